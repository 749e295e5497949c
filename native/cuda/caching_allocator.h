// caching_allocator.h: the device caching allocator shared by the `cuda` and `sim` runtimes.
//
// cudaMalloc and cudaFree synchronise the device and cost tens of microseconds, so freed blocks
// are kept and handed out again, as PyTorch's CUDA allocator does. Sizes round up to 512 bytes
// below 1 MiB, then to one of 8 steps per power of two (at most 12.5% waste). A cached block
// is reused only by allocations on the stream it was last allocated on: work queued on that
// stream before the free is ordered before the next user, with no event needed. empty_cache()
// returns every cached block through the raw free function; on a failed raw allocation the
// cache is emptied and the allocation tried once more.
#pragma once
#include <cstddef>
#include <map>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "cuda/runtime.h"

namespace emu {

class CachingAllocator {
 public:
  using RawAllocate = void* (*)(size_t bytes);  // nullptr when the device is out of memory
  using RawFree = void (*)(void* ptr);
  CachingAllocator(const char* device, RawAllocate raw_allocate, RawFree raw_free)
      : device_(device), raw_allocate_(raw_allocate), raw_free_(raw_free) {}

  static size_t round_size(size_t bytes);
  void* allocate(size_t bytes, Stream stream);  // throws emu::Error (Memory) naming the device
  void deallocate(void* ptr);                   // throws emu::Error (Device) for an unknown pointer
  DeviceMemoryStats stats();
  void empty_cache();
  void reset_peak();

 private:
  struct Block {
    size_t bytes;
    void* stream;
  };
  void release_cached_locked();

  const char* device_;
  RawAllocate raw_allocate_;
  RawFree raw_free_;
  std::mutex mutex_;
  std::unordered_map<void*, Block> live_;
  std::map<std::pair<void*, size_t>, std::vector<void*>> cached_;  // (stream, size) -> blocks
  DeviceMemoryStats stats_;
};

}  // namespace emu
