// sim.cpp: the emulator's scheduler; see sim.h for what it promises.
//
// Per OS thread there is one Runner, which owns the fibers (with their stacks, kept between
// blocks and launches) and the shared-memory arena of the block it is running. Running a block:
//   - every thread becomes a fiber, runnable;
//   - passes: resume each runnable fiber, in the pass's order, until it waits or exits;
//   - when every live thread waits at a barrier (same place), release them all and start a new
//     phase with a new order; a warp collective completes as soon as its last lane arrives
//     (that lane does the exchange for all and carries on);
//   - a pass in which nothing could run, with live threads left, is a deadlock.
// An error cancels the block: each suspended fiber is resumed once more and unwinds its stack by
// throwing Cancelled from the call it waits in.
#include "sim.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <new>
#include <vector>

#include "core/dtype.h"
#include "core/errors.h"
#include "cpu/thread_pool.h"
#include "sim/device_sim.h"
#include "sim/fiber.h"

// The built-in variables of device_sim.h; threadIdx is rewritten at every switch into a fiber.
thread_local uint3 threadIdx;
thread_local uint3 blockIdx;
thread_local dim3 blockDim;
thread_local dim3 gridDim;

namespace emu::sim {

bool available() { return true; }

namespace {

constexpr int kWarp = 32;
constexpr int kMaxThreads = 1024;
constexpr size_t kStaticSharedLimit = 48 * 1024;   // CUDA's limit for static __shared__
constexpr size_t kSharedLimit = 227 * 1024;        // per block on sm_90 (dynamic opt-in)
constexpr unsigned char kPoison = 0xFF;            // NaN as f32, bf16 and f16, -1 as int

std::string where(Site s) {
  const char* slash = std::strrchr(s.file, '/');
  return std::string(slash ? slash + 1 : s.file) + ":" + std::to_string(s.line);
}

std::string triple(const uint3& v) {
  return "(" + std::to_string(v.x) + "," + std::to_string(v.y) + "," + std::to_string(v.z) + ")";
}

// ---- thread order ------------------------------------------------------------------------

std::mutex order_mutex;
bool order_set = false;
Order order_value;

uint64_t splitmix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// ---- per-thread and per-warp state -------------------------------------------------------

struct Cancelled {};  // thrown inside a fiber to unwind it when its block is abandoned

enum class Wait : uint8_t { Runnable, Barrier, Warp, Exited };

enum class WarpKind : uint8_t { Sync, Shuffle, Ballot, Mma, Ldmatrix };
const char* const kWarpKindNames[] = {"__syncwarp", "a shuffle", "a vote", "mma.sync", "ldmatrix"};

// One lane's part in a warp collective; lives on the lane's stack while it waits.
struct WarpOp {
  WarpKind kind;
  unsigned mask;
  Site site;
  const char* what;
  int mode = 0;  // ShuffleMode, MmaType, or ldmatrix count + 8 * trans
  int width = kWarp;
  int arg = 0;
  uint64_t value = 0;
  uint64_t result = 0;
  float* d = nullptr;
  const uint32_t* a = nullptr;
  const uint32_t* b = nullptr;
  const float* c = nullptr;
  uint32_t* regs = nullptr;
  const void* address = nullptr;
};

struct AsyncCopy {
  void* dst;
  const void* src;
  int bytes;
};

struct Fiber {
  Context context;
  Stack stack;
  uint3 index;
  int linear = 0;
  Wait wait = Wait::Exited;
  bool started = false;
  bool cancel = false;
  Site site{"", 0};      // where it waits
  const char* what = "";
  BarrierKind barrier_kind = BarrierKind::Plain;
  int predicate = 0;
  int barrier_result = 0;
  WarpOp* op = nullptr;
  std::vector<AsyncCopy> copies;      // issued, not yet landed
  std::vector<size_t> group_ends;     // committed groups, as ends in `copies`
};

struct Warp {
  WarpOp* slot[kWarp];  // the collective each lane waits in
  unsigned exited;      // lanes that have exited (or do not exist in a partial warp)
};

struct StaticShared {
  const void* tag;
  size_t offset;
};

struct Runner {
  Context scheduler;
  std::vector<std::unique_ptr<Fiber>> fibers;  // stable addresses (ucontext keeps pointers)
  unsigned char* arena = nullptr;              // this block's shared memory
  size_t arena_used = 0, static_used = 0, dynamic_bytes = 0;
  std::vector<StaticShared> statics;
  Warp warps[kMaxThreads / kWarp];

  const char* kernel = "";
  void (*body)(void*) = nullptr;
  void* ctx = nullptr;
  int threads = 0, live = 0, at_barrier = 0;
  std::vector<int> order;
  Order order_kind;
  uint64_t block_linear = 0, phase = 0;
  std::exception_ptr error;
  uint3 error_thread;

  Fiber* current = nullptr;

  Runner() { arena = static_cast<unsigned char*>(::operator new(kSharedLimit, std::align_val_t(128))); }
  ~Runner() { ::operator delete(arena, std::align_val_t(128)); }

  void run_block(uint64_t linear);
  void reorder();
  void resume(Fiber& f);
  void release_barrier();
  void fail_block(const std::string& msg, const Fiber* f);
  std::string deadlock_message();
  void cancel_all();
};

thread_local Runner* tl_runner = nullptr;  // the owner's pointer, without a TLS guard on each use

Runner& runner() {
  thread_local std::unique_ptr<Runner> owner;  // freed with its OS thread (a pool resize)
  if (!owner) {
    owner = std::make_unique<Runner>();
    tl_runner = owner.get();
  }
  return *owner;
}

// The running fiber; every entry point below is only valid inside a kernel.
Fiber& self() {
  Runner* r = tl_runner;
  if (!r || !r->current) fail(ErrorKind::Internal, "sim: a device intrinsic was called outside a kernel launch");
  return *r->current;
}

[[noreturn]] void kernel_error(const std::string& msg) { fail(ErrorKind::Device, msg); }

// Suspends the running fiber until the scheduler resumes it; unwinds it if its block was abandoned.
void suspend(Fiber& f) {
  Runner& r = *tl_runner;
  switch_context(f.context, r.scheduler);
  if (f.cancel) throw Cancelled{};
}

void land_copies(Fiber& f, size_t count) {
  for (size_t i = 0; i < count; i++) std::memcpy(f.copies[i].dst, f.copies[i].src, size_t(f.copies[i].bytes));
  f.copies.erase(f.copies.begin(), f.copies.begin() + ptrdiff_t(count));
  size_t kept = 0;
  for (size_t end : f.group_ends) {
    if (end > count) f.group_ends[kept++] = end - count;
  }
  f.group_ends.resize(kept);
}

void on_exit(Runner& r, Fiber& f) {
  const int lane = f.linear % kWarp;
  Warp& w = r.warps[f.linear / kWarp];
  w.exited |= 1u << lane;
  if (r.error) return;  // the block is being abandoned; slots may name unwound operations
  for (int l = 0; l < kWarp; l++) {
    const WarpOp* op = w.slot[l];
    if (op && (op->mask >> lane & 1)) {
      r.fail_block("thread " + triple(f.index) + " exited while lane " + std::to_string(l) + " of its warp waits for it in " +
                       op->what + " at " + where(op->site),
                   &f);
    }
  }
}

void fiber_main(void* arg) {
  auto& f = *static_cast<Fiber*>(arg);
  Runner& r = *tl_runner;
  bool cancelled = f.cancel;
  if (!cancelled) {
    try {
      r.body(r.ctx);
    } catch (const Cancelled&) {
      cancelled = true;
    } catch (...) {
      if (!r.error) {
        r.error = std::current_exception();
        r.error_thread = f.index;
      }
    }
  }
  // Outside the catch blocks: never switch fibers while an exception is being handled.
  if (!cancelled) land_copies(f, f.copies.size());
  f.copies.clear();
  f.group_ends.clear();
  f.wait = Wait::Exited;
  r.live--;
  if (!cancelled) on_exit(r, f);
  switch_context(f.context, r.scheduler);
  std::abort();  // an exited fiber is never resumed
}

void Runner::fail_block(const std::string& msg, const Fiber* f) {
  if (error) return;
  error = std::make_exception_ptr(Error(ErrorKind::Device, msg));
  error_thread = f ? f->index : uint3{0, 0, 0};
}

void Runner::reorder() {
  const int n = threads;
  order.resize(size_t(n));
  for (int i = 0; i < n; i++) order[size_t(i)] = order_kind.kind == Order::Reverse ? n - 1 - i : i;
  if (order_kind.kind == Order::Random) {
    uint64_t s = splitmix(order_kind.seed ^ splitmix(block_linear * 0x100000001b3ull + phase));
    for (int i = n - 1; i > 0; i--) {
      s = splitmix(s);
      std::swap(order[size_t(i)], order[size_t(s % uint64_t(i + 1))]);
    }
  }
}

void Runner::resume(Fiber& f) {
  current = &f;
  threadIdx = f.index;
  switch_context(scheduler, f.context);
  current = nullptr;
}

void Runner::release_barrier() {
  Fiber* first = nullptr;
  int count = 0, total = 0;
  for (int i = 0; i < threads; i++) {
    Fiber& f = *fibers[size_t(i)];
    if (f.wait != Wait::Barrier) continue;
    if (!first) first = &f;
    const bool same_file = f.site.file == first->site.file || std::strcmp(f.site.file, first->site.file) == 0;
    if (f.site.line != first->site.line || !same_file || f.barrier_kind != first->barrier_kind) {
      fail_block("threads of a block wait at different barriers: thread " + triple(first->index) + " at " +
                     first->what + " (" + where(first->site) + "), thread " + triple(f.index) + " at " + f.what + " (" +
                     where(f.site) + ")",
                 &f);
      return;
    }
    total++;
    count += f.predicate != 0;
  }
  int result = 0;
  switch (first->barrier_kind) {
    case BarrierKind::Plain: break;
    case BarrierKind::Count: result = count; break;
    case BarrierKind::And: result = count == total; break;
    case BarrierKind::Or: result = count > 0; break;
  }
  for (int i = 0; i < threads; i++) {
    Fiber& f = *fibers[size_t(i)];
    if (f.wait != Wait::Barrier) continue;
    f.wait = Wait::Runnable;
    f.barrier_result = result;
  }
  at_barrier = 0;
  phase++;
  reorder();
}

std::string Runner::deadlock_message() {
  // Name a lane stuck in a warp collective and a lane it waits for, or two barrier places.
  for (int i = 0; i < threads; i++) {
    const Fiber& f = *fibers[size_t(i)];
    if (f.wait != Wait::Warp) continue;
    const int warp = f.linear / kWarp;
    for (int l = 0; l < kWarp; l++) {
      if (!(f.op->mask >> l & 1)) continue;
      const Fiber& g = *fibers[size_t(warp * kWarp + l)];
      if (g.wait == Wait::Warp && g.op->mask == f.op->mask) continue;
      return "deadlock: thread " + triple(f.index) + " waits in " + f.what + " at " + where(f.site) +
             " for lane " + std::to_string(l) + ", which waits in " + g.what + " at " + where(g.site);
    }
  }
  return "deadlock: no thread of the block can run";
}

void Runner::cancel_all() {
  for (int i = 0; i < threads; i++) {
    Fiber& f = *fibers[size_t(i)];
    if (f.wait == Wait::Exited) continue;
    f.cancel = true;
    resume(f);
  }
}

void Runner::run_block(uint64_t linear) {
  block_linear = linear;
  blockIdx = uint3{unsigned(linear % gridDim.x), unsigned(linear / gridDim.x % gridDim.y),
                   unsigned(linear / (uint64_t(gridDim.x) * gridDim.y))};
  std::memset(arena, kPoison, dynamic_bytes);
  arena_used = (dynamic_bytes + 127) & ~size_t(127);
  static_used = 0;
  statics.clear();
  for (int w = 0; w < (threads + kWarp - 1) / kWarp; w++) {
    std::fill(std::begin(warps[w].slot), std::end(warps[w].slot), nullptr);
    const int lanes = std::min(kWarp, threads - w * kWarp);
    warps[w].exited = lanes == kWarp ? 0u : ~((1u << lanes) - 1);
  }
  for (int i = 0; i < threads; i++) {
    Fiber& f = *fibers[size_t(i)];
    f.index = uint3{unsigned(i) % blockDim.x, unsigned(i) / blockDim.x % blockDim.y, unsigned(i) / (blockDim.x * blockDim.y)};
    f.linear = i;
    f.wait = Wait::Runnable;
    f.cancel = false;
    f.op = nullptr;
    f.context.start(f.stack, &fiber_main, &f);
  }
  live = threads;
  at_barrier = 0;
  phase = 0;
  error = nullptr;
  reorder();

  while (live > 0 && !error) {
    bool ran = false;
    for (size_t k = 0; k < order.size() && !error; k++) {
      Fiber& f = *fibers[size_t(order[k])];
      if (f.wait != Wait::Runnable) continue;
      resume(f);
      ran = true;
    }
    if (error || live == 0) break;
    if (at_barrier == live) {
      release_barrier();
    } else if (!ran) {
      fail_block(deadlock_message(), nullptr);
    }
  }
  if (error) {
    cancel_all();
    std::exception_ptr e = error;
    error = nullptr;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      kernel_error(std::string("sim: kernel ") + kernel + ", block " + triple(blockIdx) + ", thread " +
                   triple(error_thread) + ": " + ex.what());
    } catch (...) {
      kernel_error(std::string("sim: kernel ") + kernel + ", block " + triple(blockIdx) + ", thread " +
                   triple(error_thread) + ": a non-standard exception was thrown");
    }
  }
}

// ---- warp collectives --------------------------------------------------------------------

float mma_input(MmaType type, uint32_t reg, int half) {
  const uint16_t bits = uint16_t(reg >> (16 * half));
  return type == MmaType::BF16 ? bf16_to_float(bf16{bits}) : f16_to_float(f16{bits});
}

// Fragment layouts of mma.m16n8k16 (PTX ISA; g = lane / 4, t = lane % 4; see kernels.md).
void execute_mma(Warp& w) {
  const MmaType type = MmaType(w.slot[0]->mode);
  float A[16][16], B[16][8], C[16][8];
  for (int lane = 0; lane < kWarp; lane++) {
    const WarpOp& op = *w.slot[lane];
    const int g = lane >> 2, t = lane & 3;
    for (int i = 0; i < 8; i++) {
      A[g + 8 * ((i >> 1) & 1)][2 * t + (i & 1) + 8 * (i >> 2)] = mma_input(type, op.a[i >> 1], i & 1);
    }
    for (int i = 0; i < 4; i++) B[2 * t + (i & 1) + 8 * (i >> 1)][g] = mma_input(type, op.b[i >> 1], i & 1);
    for (int i = 0; i < 4; i++) C[g + 8 * (i >> 1)][2 * t + (i & 1)] = op.c[i];
  }
  for (int lane = 0; lane < kWarp; lane++) {
    const int g = lane >> 2, t = lane & 3;
    float out[4];
    for (int i = 0; i < 4; i++) {
      const int row = g + 8 * (i >> 1), col = 2 * t + (i & 1);
      float acc = C[row][col];
      for (int k = 0; k < 16; k++) acc = std::fma(A[row][k], B[k][col], acc);
      out[i] = acc;
    }
    std::memcpy(w.slot[lane]->d, out, sizeof out);  // d may alias c: written after all reads
  }
}

bool in_shared(const Runner& r, const void* p, size_t bytes) {
  auto* c = static_cast<const unsigned char*>(p);
  return c >= r.arena && c + bytes <= r.arena + r.arena_used;
}

void execute_ldmatrix(const Runner& r, Warp& w) {
  const int count = w.slot[0]->mode & 7;
  const bool trans = w.slot[0]->mode & 8;
  const unsigned char* rows[32];
  for (int i = 0; i < 8 * count; i++) {
    rows[i] = static_cast<const unsigned char*>(w.slot[i]->address);
    if (reinterpret_cast<uintptr_t>(rows[i]) % 16 != 0 || !in_shared(r, rows[i], 16)) {
      kernel_error(std::string("ldmatrix at ") + where(w.slot[i]->site) + ": lane " + std::to_string(i) +
                   " gives a row address that is not a 16-byte-aligned address in shared memory");
    }
  }
  auto element = [&](int matrix, int row, int col) {
    uint16_t v;
    std::memcpy(&v, rows[matrix * 8 + row] + 2 * col, 2);
    return uint32_t(v);
  };
  for (int lane = 0; lane < kWarp; lane++) {
    const int g = lane >> 2, t = lane & 3;
    for (int m = 0; m < count; m++) {
      w.slot[lane]->regs[m] = trans ? element(m, 2 * t, g) | element(m, 2 * t + 1, g) << 16
                                    : element(m, g, 2 * t) | element(m, g, 2 * t + 1) << 16;
    }
  }
}

void execute_shuffle(Warp& w, unsigned mask) {
  for (int lane = 0; lane < kWarp; lane++) {
    if (!(mask >> lane & 1)) continue;
    WarpOp& op = *w.slot[lane];
    // PTX shfl.sync: segmask = ~(width-1); c = the CUDA wrappers' clamp value.
    const int seg = kWarp - op.width, b = op.arg & 31;
    const int clamp = ShuffleMode(op.mode) == ShuffleMode::Up ? 0 : 31;
    const int max_lane = (lane & seg) | (clamp & ~seg), min_lane = lane & seg;
    int j = lane;
    bool in_range = true;
    switch (ShuffleMode(op.mode)) {
      case ShuffleMode::Up: j = lane - b; in_range = j >= max_lane; break;
      case ShuffleMode::Down: j = lane + b; in_range = j <= max_lane; break;
      case ShuffleMode::Xor: j = lane ^ b; in_range = j <= max_lane; break;
      case ShuffleMode::Index: j = min_lane | (b & ~seg); in_range = j <= max_lane; break;
    }
    if (!in_range) j = lane;
    if (!(mask >> j & 1)) {
      kernel_error(std::string(op.what) + " at " + where(op.site) + ": lane " + std::to_string(lane) + " reads lane " +
                   std::to_string(j) + ", which is not in the mask");
    }
    op.result = w.slot[j]->value;
  }
}

// The lane that completes a collective does it for all; the others are made runnable.
void warp_collective(WarpOp& op) {
  Fiber& f = self();
  Runner& r = *tl_runner;
  const int lane = f.linear % kWarp, warp = f.linear / kWarp;
  Warp& w = r.warps[warp];
  if (!(op.mask >> lane & 1)) {
    kernel_error(std::string(op.what) + " at " + where(op.site) + ": the calling lane " + std::to_string(lane) +
                 " is not in its mask");
  }
  if (op.mask & w.exited) {
    const int missing = __builtin_ctz(op.mask & w.exited);
    kernel_error(std::string(op.what) + " at " + where(op.site) + ": lane " + std::to_string(missing) +
                 " of the mask has exited (or is not part of the block)");
  }
  if ((op.kind == WarpKind::Mma || op.kind == WarpKind::Ldmatrix) && op.mask != 0xffffffffu) {
    kernel_error(std::string(op.what) + " at " + where(op.site) + ": needs all 32 lanes of the warp");
  }
  w.slot[lane] = &op;
  for (int l = 0; l < kWarp; l++) {
    if ((op.mask >> l & 1) && (!w.slot[l] || w.slot[l]->mask != op.mask)) {
      f.wait = Wait::Warp;
      f.op = &op;
      f.site = op.site;
      f.what = op.what;
      suspend(f);
      return;  // completed by the last lane to arrive
    }
  }
  // Every lane of the mask is here: check they agree, then exchange.
  for (int l = 0; l < kWarp; l++) {
    const WarpOp* other = w.slot[l];
    if (!(op.mask >> l & 1) || (other->kind == op.kind && other->mode == op.mode && other->width == op.width)) continue;
    kernel_error(std::string("lanes of a warp disagree on a collective: lane ") + std::to_string(lane) + " in " + op.what +
                 " at " + where(op.site) + ", lane " + std::to_string(l) + " in " + other->what + " at " + where(other->site));
  }
  switch (op.kind) {
    case WarpKind::Sync: break;
    case WarpKind::Shuffle: execute_shuffle(w, op.mask); break;
    case WarpKind::Ballot: {
      unsigned ballot = 0;
      for (int l = 0; l < kWarp; l++) {
        if ((op.mask >> l & 1) && w.slot[l]->value) ballot |= 1u << l;
      }
      for (int l = 0; l < kWarp; l++) {
        if (op.mask >> l & 1) w.slot[l]->result = ballot;
      }
      break;
    }
    case WarpKind::Mma: execute_mma(w); break;
    case WarpKind::Ldmatrix: execute_ldmatrix(r, w); break;
  }
  for (int l = 0; l < kWarp; l++) {
    if (!(op.mask >> l & 1)) continue;
    w.slot[l] = nullptr;
    Fiber& g = *r.fibers[size_t(warp * kWarp + l)];
    if (&g != &f) g.wait = Wait::Runnable;
  }
}

}  // namespace

// ---- public API -------------------------------------------------------------------------------

Order parse_order(const std::string& spec) {
  Order o;
  if (spec == "sequential") return o;
  if (spec == "reverse") {
    o.kind = Order::Reverse;
    return o;
  }
  if (spec.rfind("random:", 0) == 0 && spec.size() > 7 && spec.size() <= 7 + 19 &&
      spec.find_first_not_of("0123456789", 7) == std::string::npos) {
    o.kind = Order::Random;
    o.seed = std::strtoull(spec.c_str() + 7, nullptr, 10);
    return o;
  }
  fail(ErrorKind::Value, "sim: thread order must be sequential, reverse or random:<seed> (a decimal integer), got '" + spec + "'");
}

std::string order_name(Order o) {
  switch (o.kind) {
    case Order::Sequential: return "sequential";
    case Order::Reverse: return "reverse";
    case Order::Random: return "random:" + std::to_string(o.seed);
  }
  return "?";
}

Order current_order() {
  std::lock_guard<std::mutex> lock(order_mutex);
  if (!order_set) {
    const char* env = std::getenv("EMU_SIM_ORDER");
    order_value = env && *env ? parse_order(env) : Order{};
    order_set = true;
  }
  return order_value;
}

void set_order(Order o) {
  std::lock_guard<std::mutex> lock(order_mutex);
  order_value = o;
  order_set = true;
}

void run_grid(const char* kernel, Dim grid, Dim block, size_t dynamic_shared_bytes, void (*body)(void*), void* ctx) {
  const uint64_t threads = uint64_t(block.x) * block.y * block.z;
  const std::string name = std::string("sim: launch of kernel ") + kernel;
  if (block.x == 0 || block.y == 0 || block.z == 0 || grid.x == 0 || grid.y == 0 || grid.z == 0) {
    fail(ErrorKind::Device, name + ": grid and block dimensions must be at least 1");
  }
  if (threads > uint64_t(kMaxThreads) || block.z > 64) {
    fail(ErrorKind::Device, name + ": a block has at most 1024 threads (z at most 64), got " + std::to_string(block.x) + "x" +
                                std::to_string(block.y) + "x" + std::to_string(block.z));
  }
  if (grid.y > 65535 || grid.z > 65535 || grid.x > 0x7fffffffu) {
    fail(ErrorKind::Device, name + ": grid dimensions exceed 2^31-1 x 65535 x 65535");
  }
  if (dynamic_shared_bytes > kSharedLimit) {
    fail(ErrorKind::Device, name + ": " + std::to_string(dynamic_shared_bytes) + " bytes of dynamic shared memory exceed the " +
                                std::to_string(kSharedLimit) + " a block may have");
  }
  const Order order = current_order();
  const uint64_t blocks = uint64_t(grid.x) * grid.y * grid.z;
  cpu::parallel_for(int64_t(blocks), 1, [&](int64_t begin, int64_t end) {
    Runner& r = runner();
    if (r.current) fail(ErrorKind::Device, name + ": kernels cannot launch kernels");
    while (r.fibers.size() < threads) r.fibers.push_back(std::make_unique<Fiber>());
    r.kernel = kernel;
    r.body = body;
    r.ctx = ctx;
    r.threads = int(threads);
    r.order_kind = order;
    r.dynamic_bytes = dynamic_shared_bytes;
    gridDim = dim3(grid.x, grid.y, grid.z);
    blockDim = dim3(block.x, block.y, block.z);
    for (int64_t b = begin; b < end; b++) r.run_block(uint64_t(b));
  });
}

int block_barrier(BarrierKind kind, int predicate, Site site) {
  static const char* const names[] = {"__syncthreads", "__syncthreads_count", "__syncthreads_and", "__syncthreads_or"};
  Fiber& f = self();
  f.wait = Wait::Barrier;
  f.barrier_kind = kind;
  f.predicate = predicate;
  f.site = site;
  f.what = names[int(kind)];
  tl_runner->at_barrier++;
  suspend(f);
  return f.barrier_result;
}

uint64_t warp_shuffle(ShuffleMode mode, unsigned mask, uint64_t value, int arg, int width, Site site) {
  static const char* const names[] = {"__shfl_sync", "__shfl_up_sync", "__shfl_down_sync", "__shfl_xor_sync"};
  if (width < 1 || width > kWarp || (width & (width - 1))) {
    kernel_error(std::string(names[int(mode)]) + " at " + where(site) + ": width must be a power of two up to 32, got " +
                 std::to_string(width));
  }
  WarpOp op{WarpKind::Shuffle, mask, site, names[int(mode)]};
  op.mode = int(mode);
  op.width = width;
  op.arg = arg;
  op.value = value;
  warp_collective(op);
  return op.result;
}

unsigned warp_ballot(unsigned mask, int predicate, const char* what, Site site) {
  WarpOp op{WarpKind::Ballot, mask, site, what};
  op.value = predicate != 0;
  warp_collective(op);
  return unsigned(op.result);
}

void warp_sync(unsigned mask, Site site) {
  WarpOp op{WarpKind::Sync, mask, site, "__syncwarp"};
  warp_collective(op);
}

unsigned active_mask() {
  Fiber& f = self();
  return ~tl_runner->warps[f.linear / kWarp].exited;
}

void warp_mma_m16n8k16(MmaType type, float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4], Site site) {
  WarpOp op{WarpKind::Mma, 0xffffffffu, site, type == MmaType::BF16 ? "mma_m16n8k16_bf16" : "mma_m16n8k16_f16"};
  op.mode = int(type);
  op.d = d;
  op.a = a;
  op.b = b;
  op.c = c;
  warp_collective(op);
}

void warp_ldmatrix(int count, bool trans, uint32_t* regs, const void* row_address, Site site) {
  WarpOp op{WarpKind::Ldmatrix, 0xffffffffu, site, "ldmatrix"};
  op.mode = count + (trans ? 8 : 0);
  op.regs = regs;
  op.address = row_address;
  warp_collective(op);
}

void async_copy(void* shared_dst, const void* global_src, int bytes, Site site) {
  Fiber& f = self();
  if (reinterpret_cast<uintptr_t>(shared_dst) % unsigned(bytes) || reinterpret_cast<uintptr_t>(global_src) % unsigned(bytes) ||
      !in_shared(*tl_runner, shared_dst, size_t(bytes))) {
    kernel_error("cp.async at " + where(site) + ": the destination must be a " + std::to_string(bytes) +
                 "-byte-aligned address in shared memory and the source " + std::to_string(bytes) + "-byte aligned");
  }
  std::memset(shared_dst, kPoison, size_t(bytes));  // undefined until the wait
  f.copies.push_back(AsyncCopy{shared_dst, global_src, bytes});
}

void async_commit() {
  self().group_ends.push_back(self().copies.size());  // an empty group is a group too
}

void async_wait(int newest_groups_left_pending) {
  Fiber& f = self();
  const size_t pending = size_t(std::max(newest_groups_left_pending, 0));
  if (f.group_ends.size() <= pending) return;
  land_copies(f, f.group_ends[f.group_ends.size() - 1 - pending]);
}

void* dynamic_shared() {
  self();
  return tl_runner->arena;
}

void* static_shared(const void* tag, size_t bytes, size_t align, Site site) {
  self();
  Runner& r = *tl_runner;
  for (const StaticShared& s : r.statics) {
    if (s.tag == tag) return r.arena + s.offset;
  }
  align = std::max<size_t>(align, 16);
  const size_t offset = (r.arena_used + align - 1) & ~(align - 1);
  if (r.static_used + bytes > kStaticSharedLimit || offset + bytes > kSharedLimit) {
    kernel_error("shared array at " + where(site) + ": " + std::to_string(r.static_used + bytes) +
                 " bytes of static shared memory exceed CUDA's 48 KiB (or, with the dynamic part, 227 KiB)");
  }
  std::memset(r.arena + offset, kPoison, bytes);
  r.arena_used = offset + bytes;
  r.static_used += bytes;
  r.statics.push_back(StaticShared{tag, offset});
  return r.arena + offset;
}

}  // namespace emu::sim
