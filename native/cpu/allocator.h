// allocator.h: the CPU device's caching allocator.
//
// Touching a fresh 4 KiB page costs about 12 us on our machines, even for memory just freed to
// the OS, so an engine that mallocs per op spends its time in page faults. Freed blocks are
// kept in size buckets and handed out again: steady-state training touches no fresh pages.
// Buckets: sizes round up to a multiple of 64 bytes below 4 KiB, then to one of 8 steps per
// power of two (at most 12.5% waste). Blocks are 64-byte aligned. empty_cache() returns the
// cached blocks to the OS.
#pragma once
#include <cstddef>
#include <cstdint>

namespace emu::cpu {

struct AllocatorStats {
  int64_t allocated = 0;       // bytes in live blocks (rounded sizes)
  int64_t reserved = 0;        // allocated + cached
  int64_t peak_allocated = 0;
  int64_t live_blocks = 0;
  int64_t fresh_allocations = 0;  // blocks that came from the OS rather than the cache
};

void* allocate(size_t bytes, size_t* rounded);
void deallocate(void* p, size_t rounded);
void empty_cache();
AllocatorStats allocator_stats();
void reset_peak();

}  // namespace emu::cpu
