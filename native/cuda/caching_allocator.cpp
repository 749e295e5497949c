// caching_allocator.cpp: see caching_allocator.h.
#include "cuda/caching_allocator.h"

#include <string>

#include "core/errors.h"

namespace emu {

size_t CachingAllocator::round_size(size_t bytes) {
  if (bytes == 0) bytes = 1;
  if (bytes <= (size_t(1) << 20)) return (bytes + 511) & ~size_t(511);
  const int msb = 63 - __builtin_clzll(bytes - 1);  // 2^msb < bytes <= 2^(msb+1)
  const size_t step = size_t(1) << (msb - 3);       // 8 steps between 2^msb and 2^(msb+1)
  return (bytes + step - 1) / step * step;
}

void* CachingAllocator::allocate(size_t bytes, Stream stream) {
  const size_t rounded = round_size(bytes);
  std::lock_guard<std::mutex> lock(mutex_);
  void* ptr = nullptr;
  auto it = cached_.find({stream.handle, rounded});
  if (it != cached_.end() && !it->second.empty()) {
    ptr = it->second.back();
    it->second.pop_back();
  } else {
    ptr = raw_allocate_(rounded);
    if (!ptr) {
      release_cached_locked();
      ptr = raw_allocate_(rounded);
      if (!ptr) fail(ErrorKind::Memory, std::string(device_) + ": out of memory allocating " + std::to_string(bytes) + " bytes");
    }
    stats_.reserved += int64_t(rounded);
    stats_.fresh_allocations++;
  }
  live_[ptr] = Block{rounded, stream.handle};
  stats_.allocated += int64_t(rounded);
  stats_.live_blocks++;
  if (stats_.allocated > stats_.peak_allocated) stats_.peak_allocated = stats_.allocated;
  return ptr;
}

void CachingAllocator::deallocate(void* ptr) {
  if (!ptr) return;
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = live_.find(ptr);
  if (it == live_.end()) fail(ErrorKind::Device, std::string(device_) + ": free of a pointer this allocator did not hand out");
  cached_[{it->second.stream, it->second.bytes}].push_back(ptr);
  stats_.allocated -= int64_t(it->second.bytes);
  stats_.live_blocks--;
  live_.erase(it);
}

DeviceMemoryStats CachingAllocator::stats() {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

void CachingAllocator::empty_cache() {
  std::lock_guard<std::mutex> lock(mutex_);
  release_cached_locked();
}

void CachingAllocator::release_cached_locked() {
  for (auto& [key, blocks] : cached_) {
    for (void* p : blocks) raw_free_(p);
    stats_.reserved -= int64_t(key.second * blocks.size());
  }
  cached_.clear();
}

void CachingAllocator::reset_peak() {
  std::lock_guard<std::mutex> lock(mutex_);
  stats_.peak_allocated = stats_.allocated;
}

}  // namespace emu
