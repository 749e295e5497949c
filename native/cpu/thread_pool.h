// thread_pool.h: the CPU device's persistent pool of worker threads.
//
// Created once, sized by EMU_NUM_THREADS (default: the cores this process may run on). A
// parallel_for splits [0, n) into one contiguous chunk per worker, so the split (and therefore
// every reduction result) depends only on n and the thread count, never on timing. The calling
// thread takes chunk 0 itself. An exception thrown in any chunk is re-thrown on the caller.
// Nested parallel_for calls run serially on the thread that makes them.
#pragma once
#include <cstdint>
#include <functional>

namespace emu::cpu {

int num_threads();
void set_num_threads(int n);

// fn(begin, end) is called on disjoint ranges covering [0, n). Ranges are at least `grain`
// long (except the last), so tiny loops stay on one thread.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace emu::cpu
