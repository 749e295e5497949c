// runtime.cpp: the `sim` implementation of the device runtime layer (cuda/runtime.h).
//
// Device memory is host memory (256-byte aligned, as cudaMalloc's), handed out through the same
// CachingAllocator as `cuda`. Launches run to completion inside launch(), so every stream is
// already in order and synchronised when a call returns: streams and events are tokens, and an
// event records the host clock when it is recorded.
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <new>

#include "core/errors.h"
#include "cuda/caching_allocator.h"
#include "cuda/runtime.h"

namespace emu::sim {
namespace {

void* raw_allocate(size_t bytes) { return ::operator new(bytes, std::align_val_t(256), std::nothrow); }
void raw_free(void* p) { ::operator delete(p, std::align_val_t(256)); }

struct SimEvent {
  std::chrono::steady_clock::time_point at;
  bool recorded = false;
};

class SimRuntime final : public DeviceRuntime {
 public:
  const char* name() const override { return "sim"; }

  void* allocate(size_t bytes, Stream stream) override { return allocator_.allocate(bytes, stream); }
  void deallocate(void* ptr) override { allocator_.deallocate(ptr); }
  DeviceMemoryStats memory_stats() override { return allocator_.stats(); }
  void empty_cache() override { allocator_.empty_cache(); }
  void reset_peak() override { allocator_.reset_peak(); }

  void copy_to_device(void* dst, const void* src, size_t bytes, Stream) override { copy(dst, src, bytes); }
  void copy_to_host(void* dst, const void* src, size_t bytes, Stream) override { copy(dst, src, bytes); }
  void copy_on_device(void* dst, const void* src, size_t bytes, Stream) override { copy(dst, src, bytes); }
  void fill_bytes(void* dst, int byte, size_t bytes, Stream) override {
    if (bytes) std::memset(dst, byte, bytes);
  }

  Stream create_stream() override { return Stream{new char}; }
  void destroy_stream(Stream stream) override { delete static_cast<char*>(stream.handle); }
  void synchronize(Stream) override {}
  void synchronize_device() override {}

  Event create_event() override { return Event{new SimEvent}; }
  void destroy_event(Event event) override { delete static_cast<SimEvent*>(event.handle); }
  void record(Event event, Stream) override {
    auto* e = event_of(event);
    e->at = std::chrono::steady_clock::now();
    e->recorded = true;
  }
  void wait(Stream, Event) override {}
  void synchronize(Event) override {}
  float elapsed_ms(Event start, Event end) override {
    const SimEvent *a = event_of(start), *b = event_of(end);
    if (!a->recorded || !b->recorded) fail(ErrorKind::Device, "sim: elapsed_ms of an event that was never recorded");
    return std::chrono::duration<float, std::milli>(b->at - a->at).count();
  }

 private:
  static void copy(void* dst, const void* src, size_t bytes) {
    if (bytes) std::memmove(dst, src, bytes);
  }
  static SimEvent* event_of(Event e) {
    if (!e.handle) fail(ErrorKind::Device, "sim: null event");
    return static_cast<SimEvent*>(e.handle);
  }
  CachingAllocator allocator_{"sim", &raw_allocate, &raw_free};
};

}  // namespace

DeviceRuntime& runtime() {
  static SimRuntime* r = new SimRuntime();  // never destroyed: blocks may outlive static teardown
  return *r;
}

}  // namespace emu::sim
