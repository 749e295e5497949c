// fiber.h: the emulator's user-space threads: stacks and the context switch.
//
// Every emulated CUDA thread is a fiber with its own stack. Fibers of a block all live on one
// OS thread (the worker running the block) and switch only where a kernel waits (barriers, warp
// collectives), so the switch is a plain function call that saves the callee-saved registers:
// a small hand-written x86-64 routine (a few ns), or ucontext elsewhere (a syscall per switch,
// about 200x slower, correct but only a fallback). EMU_SIM_UCONTEXT forces the fallback, to test it.
//
// Stacks are 64 KiB with a PROT_NONE guard page below, mapped with MAP_NORESERVE so an idle
// stack costs a few KiB of resident memory; the emulator keeps them between blocks and launches.
#pragma once
#include <cstddef>

#if defined(__x86_64__) && !defined(EMU_SIM_UCONTEXT)
#define EMU_SIM_ASM_SWITCH 1
#else
#define EMU_SIM_ASM_SWITCH 0
#include <ucontext.h>
#endif

namespace emu::sim {

class Stack {
 public:
  static constexpr size_t kBytes = 64 * 1024;
  Stack();  // maps kBytes plus the guard page; throws emu::Error (Memory) on failure
  ~Stack();
  Stack(Stack&& other) noexcept;
  Stack& operator=(Stack&& other) noexcept;
  Stack(const Stack&) = delete;
  Stack& operator=(const Stack&) = delete;
  char* top() const { return base_ + guard_ + kBytes; }

 private:
  char* base_ = nullptr;  // start of the mapping (the guard page)
  size_t guard_ = 0;
};

// A suspended execution context. `start` prepares one that, on its first switch, calls
// entry(arg) on `stack`; entry must never return (it switches away for the last time instead).
struct Context {
#if EMU_SIM_ASM_SWITCH
  void* sp = nullptr;
#else
  ucontext_t uc;
  void (*entry)(void*) = nullptr;  // what the first switch calls
  void* arg = nullptr;
#endif
  void start(Stack& stack, void (*entry)(void*), void* arg);
};

// Saves the running context into `from` and resumes `to`. A full compiler barrier (an opaque
// call): nothing the kernel keeps in memory is cached across it.
void switch_context(Context& from, Context& to);

}  // namespace emu::sim
