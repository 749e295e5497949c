// runtime.cu: the real CUDA implementation of the device runtime layer (runtime.h), compiled by
// nvcc and linked with the static cudart, so the addon loads on machines without a driver.
// Every call is checked; a failure becomes a DeviceError carrying CUDA's message.
#include <cuda_runtime.h>

#include "core/errors.h"
#include "cuda/caching_allocator.h"
#include "cuda/runtime.h"

namespace emu::cuda {
namespace {

void check(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return;
  cudaGetLastError();  // clear a sticky launch error so the next call starts clean
  fail(ErrorKind::Device, std::string("cuda: ") + what + ": " + cudaGetErrorString(err));
}

void* raw_allocate(size_t bytes) {
  void* p = nullptr;
  if (cudaMalloc(&p, bytes) != cudaSuccess) {
    cudaGetLastError();
    return nullptr;
  }
  return p;
}

void raw_free(void* p) { cudaFree(p); }

cudaStream_t stream_of(Stream s) { return static_cast<cudaStream_t>(s.handle); }
cudaEvent_t event_of(Event e) { return static_cast<cudaEvent_t>(e.handle); }

class CudaRuntime final : public DeviceRuntime {
 public:
  const char* name() const override { return "cuda"; }

  void* allocate(size_t bytes, Stream stream) override { return allocator_.allocate(bytes, stream); }
  void deallocate(void* ptr) override { allocator_.deallocate(ptr); }
  DeviceMemoryStats memory_stats() override { return allocator_.stats(); }
  void empty_cache() override {
    synchronize_device();
    allocator_.empty_cache();
  }
  void reset_peak() override { allocator_.reset_peak(); }

  void copy_to_device(void* dst, const void* src, size_t bytes, Stream stream) override {
    check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_of(stream)), "copy to device");
  }
  void copy_to_host(void* dst, const void* src, size_t bytes, Stream stream) override {
    check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_of(stream)), "copy to host");
    synchronize(stream);
  }
  void copy_on_device(void* dst, const void* src, size_t bytes, Stream stream) override {
    check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_of(stream)), "copy on device");
  }
  void fill_bytes(void* dst, int byte, size_t bytes, Stream stream) override {
    check(cudaMemsetAsync(dst, byte, bytes, stream_of(stream)), "memset");
  }

  Stream create_stream() override {
    cudaStream_t s;
    check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "create stream");
    return Stream{s};
  }
  void destroy_stream(Stream stream) override { check(cudaStreamDestroy(stream_of(stream)), "destroy stream"); }
  void synchronize(Stream stream) override { check(cudaStreamSynchronize(stream_of(stream)), "stream synchronize"); }
  void synchronize_device() override { check(cudaDeviceSynchronize(), "device synchronize"); }

  Event create_event() override {
    cudaEvent_t e;
    check(cudaEventCreate(&e), "create event");
    return Event{e};
  }
  void destroy_event(Event event) override { check(cudaEventDestroy(event_of(event)), "destroy event"); }
  void record(Event event, Stream stream) override { check(cudaEventRecord(event_of(event), stream_of(stream)), "record event"); }
  void wait(Stream stream, Event event) override {
    check(cudaStreamWaitEvent(stream_of(stream), event_of(event), 0), "stream wait event");
  }
  void synchronize(Event event) override { check(cudaEventSynchronize(event_of(event)), "event synchronize"); }
  float elapsed_ms(Event start, Event end) override {
    float ms = 0;
    check(cudaEventElapsedTime(&ms, event_of(start), event_of(end)), "event elapsed time");
    return ms;
  }

 private:
  CachingAllocator allocator_{"cuda", &raw_allocate, &raw_free};
};

}  // namespace

bool built_with_cuda() { return true; }

int device_count(std::string* why) {
  int n = 0;
  cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    if (why) *why = std::string("no CUDA device: ") + cudaGetErrorString(err);
    cudaGetLastError();  // clear the sticky error so later queries start clean
    return 0;
  }
  if (n == 0 && why) *why = "no CUDA device: the driver reports none";
  return n;
}

std::string device_name(int index) {
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, index) != cudaSuccess) {
    cudaGetLastError();
    return "";
  }
  return std::string(prop.name) + " (sm_" + std::to_string(prop.major) + std::to_string(prop.minor) + ")";
}

DeviceRuntime& runtime() {
  std::string why;
  if (device_count(&why) == 0) fail(ErrorKind::Device, "cuda: " + why);
  static CudaRuntime* r = new CudaRuntime();  // never destroyed: blocks may outlive static teardown
  return *r;
}

}  // namespace emu::cuda
