// fiber.cpp: see fiber.h.
#include "fiber.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <utility>

#include "core/errors.h"

namespace emu::sim {

Stack::Stack() {
  guard_ = size_t(sysconf(_SC_PAGESIZE));
  void* p = mmap(nullptr, guard_ + kBytes, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if (p == MAP_FAILED) fail(ErrorKind::Memory, "sim: cannot map a 64 KiB thread stack");
  base_ = static_cast<char*>(p);
  if (mprotect(base_, guard_, PROT_NONE) != 0) {
    munmap(base_, guard_ + kBytes);
    fail(ErrorKind::Memory, "sim: cannot protect a thread stack's guard page");
  }
}

Stack::~Stack() {
  if (base_) munmap(base_, guard_ + kBytes);
}

Stack::Stack(Stack&& other) noexcept
    : base_(std::exchange(other.base_, nullptr)), guard_(std::exchange(other.guard_, 0)) {}

Stack& Stack::operator=(Stack&& other) noexcept {
  std::swap(base_, other.base_);
  std::swap(guard_, other.guard_);
  return *this;
}

#if EMU_SIM_ASM_SWITCH

// emu_sim_switch(save, load): push the six callee-saved registers, store rsp in *save, load rsp
// from `load`, pop the other context's registers and return into it. The SysV ABI lets a callee
// clobber everything else, and MXCSR/x87 control words are never changed by our kernels.
//
// emu_sim_fiber_start: where a new fiber's first switch "returns" to; Context::start leaves the
// entry function in r13 and its argument in r12. `.cfi_undefined rip` ends backtraces here.
asm(R"(
  .text
  .globl emu_sim_switch
  .hidden emu_sim_switch
  .type emu_sim_switch, @function
  .p2align 4
emu_sim_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size emu_sim_switch, .-emu_sim_switch

  .globl emu_sim_fiber_start
  .hidden emu_sim_fiber_start
  .type emu_sim_fiber_start, @function
  .p2align 4
emu_sim_fiber_start:
  .cfi_startproc
  .cfi_undefined rip
  movq %r12, %rdi
  callq *%r13
  ud2
  .cfi_endproc
  .size emu_sim_fiber_start, .-emu_sim_fiber_start
)");

extern "C" void emu_sim_switch(void** save, void* load);
extern "C" void emu_sim_fiber_start();

void Context::start(Stack& stack, void (*entry)(void*), void* arg) {
  // The frame emu_sim_switch pops: r15 r14 r13 r12 rbx rbp, then the return address. After the
  // `ret`, rsp must be 16-byte aligned so that the `call` in emu_sim_fiber_start gives entry the
  // ABI's alignment; hence 9 slots below a 16-byte-aligned top.
  auto top = reinterpret_cast<uintptr_t>(stack.top()) & ~uintptr_t(15);
  auto* frame = reinterpret_cast<void**>(top - 9 * sizeof(void*));
  frame[0] = nullptr;                                  // r15
  frame[1] = nullptr;                                  // r14
  frame[2] = reinterpret_cast<void*>(entry);           // r13
  frame[3] = arg;                                      // r12
  frame[4] = nullptr;                                  // rbx
  frame[5] = nullptr;                                  // rbp
  frame[6] = reinterpret_cast<void*>(&emu_sim_fiber_start);
  frame[7] = frame[8] = nullptr;
  sp = frame;
}

void switch_context(Context& from, Context& to) { emu_sim_switch(&from.sp, to.sp); }

#else

namespace {
// makecontext passes only ints: the Context travels as two 32-bit halves.
void ucontext_entry(unsigned lo, unsigned hi) {
  auto* ctx = reinterpret_cast<Context*>((uintptr_t(hi) << 32) | lo);
  ctx->entry(ctx->arg);
}
}  // namespace

void Context::start(Stack& stack, void (*entry)(void*), void* arg) {
  if (getcontext(&uc) != 0) fail(ErrorKind::Internal, "sim: getcontext failed");
  uc.uc_stack.ss_sp = stack.top() - Stack::kBytes;
  uc.uc_stack.ss_size = Stack::kBytes;
  uc.uc_link = nullptr;
  const auto self = reinterpret_cast<uintptr_t>(this);
  this->entry = entry;
  this->arg = arg;
  makecontext(&uc, reinterpret_cast<void (*)()>(&ucontext_entry), 2, unsigned(self), unsigned(self >> 32));
}

void switch_context(Context& from, Context& to) {
  if (swapcontext(&from.uc, &to.uc) != 0) fail(ErrorKind::Internal, "sim: swapcontext failed");
}

#endif

}  // namespace emu::sim
