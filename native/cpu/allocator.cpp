// allocator.cpp: see allocator.h.
#include "allocator.h"

#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
#include <vector>

#include "../core/errors.h"

namespace emu::cpu {
namespace {

std::mutex mu;
std::map<size_t, std::vector<void*>> cache;  // rounded size -> free blocks
AllocatorStats stats;

size_t round_size(size_t n) {
  if (n == 0) n = 1;
  if (n <= 4096) return (n + 63) & ~size_t(63);
  int msb = 63 - __builtin_clzll(n - 1);   // n - 1 < 2^(msb+1)
  size_t step = size_t(1) << (msb - 3);    // 8 steps between 2^msb and 2^(msb+1)
  return (n + step - 1) / step * step;
}

}  // namespace

void* allocate(size_t bytes, size_t* rounded) {
  size_t r = round_size(bytes);
  *rounded = r;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(r);
  void* p = nullptr;
  if (it != cache.end() && !it->second.empty()) {
    p = it->second.back();
    it->second.pop_back();
  } else {
    p = std::aligned_alloc(64, r);
    if (!p) {
      // Give the cache back and try once more before reporting.
      for (auto& kv : cache)
        for (void* q : kv.second) std::free(q);
      for (auto& kv : cache) stats.reserved -= int64_t(kv.first * kv.second.size());
      cache.clear();
      p = std::aligned_alloc(64, r);
      if (!p) fail(ErrorKind::Memory, "cpu: out of memory allocating " + std::to_string(bytes) + " bytes");
    }
    stats.reserved += int64_t(r);
    stats.fresh_allocations++;
  }
  stats.allocated += int64_t(r);
  stats.live_blocks++;
  if (stats.allocated > stats.peak_allocated) stats.peak_allocated = stats.allocated;
  return p;
}

void deallocate(void* p, size_t rounded) {
  if (!p) return;
  std::lock_guard<std::mutex> lock(mu);
  cache[rounded].push_back(p);
  stats.allocated -= int64_t(rounded);
  stats.live_blocks--;
}

void empty_cache() {
  std::lock_guard<std::mutex> lock(mu);
  for (auto& kv : cache) {
    for (void* q : kv.second) std::free(q);
    stats.reserved -= int64_t(kv.first * kv.second.size());
  }
  cache.clear();
}

AllocatorStats allocator_stats() {
  std::lock_guard<std::mutex> lock(mu);
  return stats;
}

void reset_peak() {
  std::lock_guard<std::mutex> lock(mu);
  stats.peak_allocated = stats.allocated;
}

}  // namespace emu::cpu
