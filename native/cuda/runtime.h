// runtime.h: the device runtime layer: memory, copies, streams, events (launch is the template in
// device.cuh). One interface, two implementations chosen at compile time and living side by side
// in the addon:
//   - emu::cuda::runtime(): the real CUDA runtime (runtime.cu, compiled by nvcc, static cudart
//     so the addon loads on machines without a driver); runtime_absent.cpp where nvcc is missing.
//   - emu::sim::runtime(): the SIMT emulator (native/sim/runtime.cpp): device memory is host
//     memory, every stream runs in order on the calling thread, so work is done when a call
//     returns.
// Both allocate through a CachingAllocator (caching_allocator.h), so `sim` exercises the same
// reuse and statistics as `cuda`. Host code shared by both devices (op launchers in native/cuda
// .cu files, compiled once by nvcc and once by the host compiler) reaches its own device's
// runtime as EMU_DEVICE_NS::runtime() (device.cuh names the namespace).
// Every failure is an emu::Error of kind Device carrying the runtime's message.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "cpu/allocator.h"

namespace emu {

// Opaque handles; a null stream is the device's default stream.
struct Stream {
  void* handle = nullptr;
};
struct Event {
  void* handle = nullptr;
};

// The same counters as the CPU allocator's (allocated, reserved, peak, live blocks, fresh).
using DeviceMemoryStats = cpu::AllocatorStats;

class DeviceRuntime {
 public:
  virtual ~DeviceRuntime() = default;
  virtual const char* name() const = 0;  // "cuda" or "sim"

  // Device memory through the caching allocator: a freed block is reused only by allocations
  // on the stream it was allocated on (work queued there before the free is ordered first).
  virtual void* allocate(size_t bytes, Stream stream) = 0;
  virtual void deallocate(void* ptr) = 0;
  virtual DeviceMemoryStats memory_stats() = 0;
  virtual void empty_cache() = 0;  // returns cached blocks to the device (synchronises first)
  virtual void reset_peak() = 0;

  // Copies are ordered on `stream`; copy_to_host returns once the bytes are on the host.
  virtual void copy_to_device(void* dst, const void* src, size_t bytes, Stream stream) = 0;
  virtual void copy_to_host(void* dst, const void* src, size_t bytes, Stream stream) = 0;
  virtual void copy_on_device(void* dst, const void* src, size_t bytes, Stream stream) = 0;
  virtual void fill_bytes(void* dst, int byte, size_t bytes, Stream stream) = 0;

  virtual Stream create_stream() = 0;
  virtual void destroy_stream(Stream stream) = 0;
  virtual void synchronize(Stream stream) = 0;
  virtual void synchronize_device() = 0;

  virtual Event create_event() = 0;
  virtual void destroy_event(Event event) = 0;
  virtual void record(Event event, Stream stream) = 0;
  virtual void wait(Stream stream, Event event) = 0;  // later work on `stream` waits for the event
  virtual void synchronize(Event event) = 0;
  virtual float elapsed_ms(Event start, Event end) = 0;
};

namespace cuda {
bool built_with_cuda();
// Number of usable devices; 0 with `why` set when there is no driver, no device, or no CUDA build.
int device_count(std::string* why);
std::string device_name(int index);
DeviceRuntime& runtime();  // throws DeviceError saying why when no device can be used
}  // namespace cuda

namespace sim {
DeviceRuntime& runtime();
}  // namespace sim

}  // namespace emu
