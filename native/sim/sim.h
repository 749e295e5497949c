// sim.h: the SIMT emulator (device `sim`): runs native/cuda's kernel sources on the CPU.
//
// A launch runs every block to completion on one worker of the CPU thread pool (native/cpu
// thread_pool); a block's threads are fibers (fiber.h) that switch only where a kernel waits:
// __syncthreads and its _count/_and/_or forms, and the warp collectives (__syncwarp, shuffles,
// votes, mma.sync, ldmatrix), which are per-warp rendezvous over the lanes of their mask. The
// CUDA surface that kernels see (threadIdx, __shfl_sync, atomics, bf16, ...) lives in
// device_sim.h and calls the entry points below; kernels include native/cuda/device.cuh.
//
// What the emulator checks, so that a kernel that passes here has a fair chance on a GPU:
//  - Between barriers, threads run in the order EMU_SIM_ORDER names (set_order overrides it):
//    `sequential`, `reverse`, or `random:<seed>` (a fresh permutation per block and barrier
//    phase). A missing barrier gives a wrong result in at least one order.
//  - Shared memory is poisoned (0xFF bytes: NaN as f32/bf16/f16, -1 as int) at block start, and the
//    destination of a cp.async until its wait: copies land only at cp_async_wait.
//  - Exited threads count as arrived at barriers. A block whose threads wait at different
//    barriers, a warp collective whose lanes cannot all arrive (exited, or waiting elsewhere),
//    lanes that disagree on the collective, or any state where no thread can run is an error
//    naming the kernel and both source places, never a hang.
//  - Bad launch configurations, shared memory beyond the limits, misaligned or non-shared
//    ldmatrix/cp.async addresses are errors too.
// Every error, and any exception a kernel throws, reaches the caller of launch as an
// emu::Error of kind Device naming the kernel, block and thread.
//
// Not emulated: spin-waits between threads without a barrier (they never yield, so they hang),
// grid-wide synchronisation, and the exact rounding of GPU fast intrinsics and tensor cores.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace emu::sim {

// Whether the `sim` device can hold tensors: true in every build (its op kernels are
// native/cuda's, compiled against the emulator; ops without one raise a DeviceError).
bool available();

// A place in a kernel's source, captured at the call site of each waiting intrinsic.
struct Site {
  const char* file;
  int line;
};
inline Site here(const char* file = __builtin_FILE(), int line = __builtin_LINE()) { return {file, line}; }

// Thread order between barriers.
struct Order {
  enum Kind { Sequential, Reverse, Random } kind = Sequential;
  uint64_t seed = 0;
};
Order parse_order(const std::string& spec);  // throws ValueError naming the accepted forms
std::string order_name(Order o);
Order current_order();  // set_order's value, else EMU_SIM_ORDER, else sequential
void set_order(Order o);

struct Dim {
  unsigned x, y, z;
};

// Runs body(ctx) once per thread of the grid. `kernel` names the kernel in errors.
void run_grid(const char* kernel, Dim grid, Dim block, size_t dynamic_shared_bytes, void (*body)(void*), void* ctx);

template <typename F>
void launch_grid(const char* kernel, Dim grid, Dim block, size_t dynamic_shared_bytes, F&& body) {
  run_grid(kernel, grid, block, dynamic_shared_bytes, [](void* f) { (*static_cast<F*>(f))(); }, &body);
}

// ---- entry points for device_sim.h (valid only inside a kernel) -----------------------------

enum class BarrierKind { Plain, Count, And, Or };
int block_barrier(BarrierKind kind, int predicate, Site site);

enum class ShuffleMode { Index, Up, Down, Xor };
uint64_t warp_shuffle(ShuffleMode mode, unsigned mask, uint64_t value, int arg, int width, Site site);
unsigned warp_ballot(unsigned mask, int predicate, const char* what, Site site);
void warp_sync(unsigned mask, Site site);
unsigned active_mask();

enum class MmaType { BF16, F16 };
// d = a * b + c for mma.sync.m16n8k16.row.col.f32.{bf16,f16}.{bf16,f16}.f32 (fragments as in PTX).
void warp_mma_m16n8k16(MmaType type, float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4], Site site);
// ldmatrix.sync.aligned.m8n8.x{count}{.trans}.shared.b16: lane i < 8*count supplies row i's address.
void warp_ldmatrix(int count, bool trans, uint32_t* regs, const void* row_address, Site site);

void async_copy(void* shared_dst, const void* global_src, int bytes, Site site);
void async_commit();
void async_wait(int newest_groups_left_pending);

// Shared memory of the running block: the dynamic area, and one static array per declaration
// (keyed by the address of a tag that is unique to the declaration).
void* dynamic_shared();
void* static_shared(const void* tag, size_t bytes, size_t align, Site site);

}  // namespace emu::sim
