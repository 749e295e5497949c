// thread_pool.cpp: see thread_pool.h.
//
// Workers sleep on a condition variable between jobs and spin briefly first, since training
// issues thousands of small parallel loops back to back and a futex wake costs a few
// microseconds. One job runs at a time (a mutex serialises callers from different JS threads).
#include "thread_pool.h"

#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace emu::cpu {
namespace {

thread_local bool in_parallel_region = false;

int default_threads() {
  if (const char* env = std::getenv("EMU_NUM_THREADS")) {
    int n = std::atoi(env);
    if (n >= 1 && n <= 1024) return n;
  }
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n >= 1) return n;
  }
  unsigned hw = std::thread::hardware_concurrency();
  return hw ? int(hw) : 1;
}

class Pool {
 public:
  explicit Pool(int n) { resize(n); }
  ~Pool() { stop(); }

  int size() const { return int(workers_.size()) + 1; }

  void resize(int n) {
    stop();
    stopping_ = false;
    // Each worker starts from the generation current now, not from whatever it reads once the
    // OS gets round to starting it: a job issued in between would otherwise be missed, and
    // run() would wait for that worker's part forever.
    const uint64_t start = generation_.load();
    for (int i = 1; i < n; i++) workers_.emplace_back([this, i, start] { loop(i, start); });
  }

  void run(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
    std::lock_guard<std::mutex> job_lock(job_mutex_);
    int parts = size();
    int64_t max_parts = grain > 0 ? (n + grain - 1) / grain : n;
    if (max_parts < parts) parts = int(max_parts);
    if (parts <= 1) {
      fn(0, n);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      fn_ = &fn;
      n_ = n;
      parts_ = parts;
      error_ = nullptr;
      pending_.store(parts - 1);
      generation_++;
    }
    cv_.notify_all();
    in_parallel_region = true;
    run_part(0);
    in_parallel_region = false;
    while (pending_.load(std::memory_order_acquire) != 0) {
      std::this_thread::yield();
    }
    fn_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void run_part(int part) {
    int64_t begin = n_ * part / parts_, end = n_ * (part + 1) / parts_;
    try {
      if (begin < end) (*fn_)(begin, end);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex_);
      if (!error_) error_ = std::current_exception();
    }
  }

  void loop(int index, uint64_t seen) {
    in_parallel_region = true;
    for (;;) {
      // Spin a little before sleeping: back-to-back small ops are the common case.
      for (int spin = 0; spin < 20000 && generation_.load(std::memory_order_acquire) == seen && !stopping_; spin++) {
        __builtin_ia32_pause();
      }
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait(lock, [&] { return stopping_ || generation_.load() != seen; });
      if (stopping_) return;
      seen = generation_.load();
      int parts = parts_;
      lock.unlock();
      if (index < parts) {
        run_part(index);
        pending_.fetch_sub(1, std::memory_order_release);
      }
    }
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
  }

  std::vector<std::thread> workers_;
  std::mutex job_mutex_, mutex_, error_mutex_;
  std::condition_variable cv_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t n_ = 0;
  int parts_ = 1;
  std::atomic<bool> stopping_{false};
  std::exception_ptr error_;
};

Pool& pool() {
  static Pool* p = new Pool(default_threads());  // never destroyed: workers outlive static teardown
  return *p;
}

}  // namespace

int num_threads() { return pool().size(); }

void set_num_threads(int n) {
  if (n < 1) n = 1;
  pool().resize(n);
}

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  if (in_parallel_region || n <= grain) {
    fn(0, n);
    return;
  }
  pool().run(n, grain, fn);
}

}  // namespace emu::cpu
