// addon.cpp: the N-API glue between src/tensor/native.ts and the kernels.
//
// What crosses the boundary:
//  - a storage is a handle: a number naming a slot of the storage table (pointer, size) and the
//    slot's generation, so a handle used after `free` is recognised even once the slot is
//    reused. TypeScript reference-counts storages across views and calls `free` when the last
//    view goes; its FinalizationRegistry is the backstop for tensors never disposed. (Handles
//    are not Externals with finalizers on purpose: Node runs those finalizers only when the
//    event loop turns, so a long synchronous training loop would pile them up.)
//  - a tensor view is two arguments: its storage handle and a Float64Array descriptor
//    [dtype, ndim, offset, shape..., strides...] (elements, not bytes). The descriptor is built
//    once per tensor in TypeScript and cached. Before a kernel runs, the glue re-checks that
//    the view lies inside its storage, so a wrong descriptor raises an error instead of reading
//    out of bounds.
//  - a storage lives on a device (cpu, or sim / cuda through their DeviceRuntime, cuda/runtime.h);
//    each kernel call runs the kernel table of the device its views live on (cpu/kernels.h,
//    cuda/kernels.h), and views on different devices, or an op with no kernel on the device yet,
//    are DeviceErrors.
//  - kernel failures (emu::Error) become the TypeScript error classes registered by `init`.
#include <napi.h>

#include <array>
#include <cmath>
#include <cstring>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "core/errors.h"
#include "core/view.h"
#include "cpu/allocator.h"
#include "cpu/fused.h"
#include "cpu/kernels.h"
#include "cpu/thread_pool.h"
#include "cuda/caching_allocator.h"
#include "cuda/kernels.h"
#include "cuda/runtime.h"
#include "sim/selftest.h"
#include "sim/sim.h"

namespace emu {
namespace {

struct Storage {
  void* ptr = nullptr;
  size_t bytes = 0;
  size_t rounded = 0;
  uint32_t generation = 0;
  bool live = false;
  DeviceKind device = DeviceKind::Cpu;
};

// The storage table; a handle is slot + generation * 2^32 (generations wrap at 2^20, so handles
// stay exact doubles). A deque keeps slots in place as it grows.
constexpr double kSlotSpan = 4294967296.0;
constexpr uint32_t kGenerations = 1u << 20;
std::mutex table_mutex;
std::deque<Storage> table;
std::vector<uint32_t> free_slots;

Napi::FunctionReference error_classes[7];  // indexed by ErrorKind

[[noreturn]] void throw_js(Napi::Env env, ErrorKind kind, const std::string& msg) {
  auto& ctor = error_classes[int(kind)];
  if (!ctor.IsEmpty()) throw Napi::Error(env, ctor.New({Napi::String::New(env, msg)}));
  throw Napi::Error::New(env, msg);
}

// The live slot a handle names, or null: not a handle at all (*known = false), or a handle whose
// storage was freed (*known = true). Callers hold table_mutex.
Storage* slot_of(napi_env env, napi_value v, bool* known, uint32_t* slot_index = nullptr) {
  *known = false;
  double h;
  if (napi_get_value_double(env, v, &h) != napi_ok) return nullptr;  // not a number
  if (!(h >= 0 && h == std::floor(h) && h < kSlotSpan * kGenerations)) return nullptr;
  const uint64_t id = uint64_t(h);
  const uint64_t slot = id & 0xffffffffu;
  if (slot >= table.size()) return nullptr;
  *known = true;
  if (slot_index) *slot_index = uint32_t(slot);
  Storage& s = table[slot];
  return s.live && s.generation == uint32_t(id >> 32) ? &s : nullptr;
}

// A copy of the storage a handle names; throws if it is not a live storage handle.
Storage storage_of(const Napi::Value& v, const char* what) {
  bool known;
  Storage copy;
  {
    std::lock_guard<std::mutex> lock(table_mutex);
    Storage* s = slot_of(v.Env(), v, &known);
    if (s) copy = *s;
  }
  if (!copy.live && !known) throw_js(v.Env(), ErrorKind::Value, std::string(what) + ": expected a storage handle");
  if (!copy.live) throw_js(v.Env(), ErrorKind::Value, std::string(what) + ": the tensor's storage was disposed");
  return copy;
}

// Reads (handle, descriptor) at info[i], info[i+1] into a View, checking it fits its storage.
// This runs for every operand of every op, so it talks to N-API directly: one call for the
// handle, one for the descriptor (napi_get_typedarray_info fails on anything but a typed array).
View view_at(const Napi::CallbackInfo& info, size_t i) {
  Napi::Env env = info.Env();
  const Storage s = storage_of(info[i], "native");
  napi_typedarray_type type;
  size_t len = 0;
  void* data = nullptr;
  if (napi_get_typedarray_info(env, info[i + 1], &type, &len, &data, nullptr, nullptr) != napi_ok ||
      type != napi_float64_array)
    throw_js(env, ErrorKind::Value, "native: expected a Float64Array view descriptor");
  if (len < 3) throw_js(env, ErrorKind::Value, "native: view descriptor too short");
  const double* d = static_cast<const double*>(data);
  View v;
  if (!(d[0] >= 0 && d[0] == std::floor(d[0]) && dtype_valid(int32_t(d[0])))) throw_js(env, ErrorKind::DType, "native: bad dtype code");
  v.dtype = DType(int32_t(d[0]));
  if (!(d[1] >= 0 && d[1] <= kMaxDims) || len != size_t(3 + 2 * int(d[1])))
    throw_js(env, ErrorKind::Shape, "native: a view has at most 8 dims");
  v.ndim = int(d[1]);
  double offset = d[2];
  if (!(offset >= 0 && offset == std::floor(offset) && offset < 9.0e15))
    throw_js(env, ErrorKind::Index, "native: bad offset in a view descriptor");
  double lo = offset, hi = offset;
  bool empty = false;
  for (int k = 0; k < v.ndim; k++) {
    double n = d[3 + k], st = d[3 + v.ndim + k];
    if (!(n >= 0 && n == std::floor(n) && n < 9.0e15) || !(st == std::floor(st) && std::fabs(st) < 9.0e15))
      throw_js(env, ErrorKind::Shape, "native: bad shape or stride in a view descriptor");
    v.shape[k] = int64_t(n);
    v.strides[k] = int64_t(st);
    if (n == 0) empty = true;
    else if (st > 0) hi += (n - 1) * st;
    else lo += (n - 1) * st;
  }
  const int es = dtype_size(v.dtype);
  if (!empty && (lo < 0 || (hi + 1) * es > double(s.bytes)))
    throw_js(env, ErrorKind::Index, "native: view lies outside its storage");
  v.data = static_cast<char*>(s.ptr) + int64_t(offset) * es;
  v.device = s.device;
  return v;
}

// The element-wise kernels walk every operand over the output's shape, reading each in the dtype
// the op implies; check both, since a mismatch would read or write past an operand's storage.
void check_like(Napi::Env env, const char* op, const View& out, const View& v, DType dtype) {
  bool same = v.ndim == out.ndim && v.dtype == dtype;
  for (int k = 0; same && k < v.ndim; k++) same = v.shape[k] == out.shape[k];
  if (!same) throw_js(env, ErrorKind::Shape, std::string(op) + ": operand views do not match the output's shape or dtype");
}

template <class F>
Napi::Value guarded(const Napi::CallbackInfo& info, F&& f) {
  try {
    return f();
  } catch (const Napi::Error&) {
    throw;
  } catch (const Error& e) {
    throw_js(info.Env(), e.kind, e.what());
  } catch (const std::bad_alloc&) {
    throw_js(info.Env(), ErrorKind::Memory, "out of memory");
  } catch (const std::exception& e) {
    throw_js(info.Env(), ErrorKind::Internal, e.what());
  }
}

double num(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsNumber()) throw_js(info.Env(), ErrorKind::Value, "native: expected a number argument");
  return info[i].As<Napi::Number>().DoubleValue();
}

void ints(const Napi::CallbackInfo& info, size_t i, int64_t* out, int n) {
  for (int k = 0; k < n; k++) out[k] = int64_t(num(info, i + k));
}

// ---- devices -------------------------------------------------------------------------------

const char* device_name(DeviceKind d) { return d == DeviceKind::Cpu ? "cpu" : d == DeviceKind::Sim ? "sim" : "cuda"; }

// The device code at info[i] (DEVICE_CODE in src/tensor/storage.ts); cpu when absent.
DeviceKind device_at(const Napi::CallbackInfo& info, size_t i) {
  if (info[i].IsUndefined()) return DeviceKind::Cpu;
  const double d = num(info, i);
  if (d == 0) return DeviceKind::Cpu;
  if (d == 1) return DeviceKind::Sim;
  if (d == 2) return DeviceKind::Cuda;
  throw_js(info.Env(), ErrorKind::Value, "native: bad device code");
}

DeviceRuntime& runtime_of(DeviceKind d) { return d == DeviceKind::Sim ? sim::runtime() : cuda::runtime(); }

const cpu::KernelTable& table_of(DeviceKind d) {
  return d == DeviceKind::Cpu ? cpu::kernels() : d == DeviceKind::Sim ? sim::kernel_table() : cuda::kernel_table();
}

// The kernel `entry` of the table of the device the views live on.
template <class Fn>
Fn kernel_for(Fn cpu::KernelTable::*entry, const char* op, std::initializer_list<const View*> views) {
  const DeviceKind d = (*views.begin())->device;
  for (const View* v : views) {
    if (v->device != d)
      fail(ErrorKind::Device, std::string(op) + ": operands are on different devices (" + device_name(d) + " and " +
                                  device_name(v->device) + ")");
  }
  Fn fn = table_of(d).*entry;
  if (!fn) fail(ErrorKind::Device, std::string("op ") + op + " has no kernel on " + device_name(d) + " yet");
  return fn;
}

// The fused kernels (cpu/fused.h): each device has a FusedKernels table of its own (the CPU's per
// instruction set; sim and cuda from native/cuda, cuda/kernels.h). Null views (absent optional
// operands) are skipped; a null entry is a DeviceError naming the op, as in kernel_for.
const cpu::FusedKernels& fused_table_of(DeviceKind d) {
  return d == DeviceKind::Cpu ? cpu::fused_kernels() : d == DeviceKind::Sim ? sim::fused_table() : cuda::fused_table();
}

template <class Fn>
Fn fused_for(Fn cpu::FusedKernels::*entry, const char* op, std::initializer_list<const View*> views) {
  const View* first = nullptr;
  for (const View* v : views) {
    if (!v) continue;
    if (!first) first = v;
    if (v->device != first->device)
      fail(ErrorKind::Device, std::string(op) + ": operands are on different devices (" + device_name(first->device) +
                                  " and " + device_name(v->device) + ")");
  }
  const DeviceKind d = first ? first->device : DeviceKind::Cpu;
  Fn fn = fused_table_of(d).*entry;
  if (!fn) fail(ErrorKind::Device, std::string("op ") + op + " has no kernel on " + device_name(d) + " yet");
  return fn;
}

// fusedKernels(device) -> the names of the fused kernels that device has (the TypeScript layer
// takes the fused path where the device has the kernel and the composed one elsewhere).
Napi::Value FusedKernelNames(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const cpu::FusedKernels& t = fused_table_of(device_at(info, 0));
    const std::pair<const char*, bool> entries[] = {
        {"attention", t.attention != nullptr},         {"attentionBackward", t.attention_backward != nullptr},
        {"normForward", t.norm_forward != nullptr},     {"normBackward", t.norm_backward != nullptr},
        {"crossEntropy", t.cross_entropy != nullptr},   {"crossEntropyBackward", t.cross_entropy_backward != nullptr},
        {"adamw", t.adamw != nullptr},                 {"swiglu", t.swiglu != nullptr},
        {"swigluBackward", t.swiglu_backward != nullptr},
        {"groupNormForward", t.group_norm_forward != nullptr}, {"groupNormBackward", t.group_norm_backward != nullptr},
        {"linear", t.linear != nullptr},                {"adamwMixed", t.adamw_mixed != nullptr},
    };
    auto names = Napi::Array::New(info.Env());
    uint32_t n = 0;
    for (const auto& [name, present] : entries)
      if (present) names.Set(n++, name);
    return names;
  });
}

// ---- storage -------------------------------------------------------------------------------

Napi::Value Init(const Napi::CallbackInfo& info) {
  auto classes = info[0].As<Napi::Object>();
  const char* names[7] = {"ShapeError", "DTypeError", "DeviceError", "IndexError", "ValueError", "MemoryError", "InternalError"};
  for (int k = 0; k < 7; k++) {
    auto v = classes.Get(names[k]);
    if (v.IsFunction()) error_classes[k] = Napi::Persistent(v.As<Napi::Function>());
  }
  return info.Env().Undefined();
}

// alloc(bytes, device?) -> handle; device memory comes from that device's caching allocator.
Napi::Value Alloc(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    double bytes = num(info, 0);
    if (!(bytes >= 0 && bytes == std::floor(bytes) && bytes < 1.0e15))
      throw_js(info.Env(), ErrorKind::Value, "alloc: bad byte count");
    const DeviceKind device = device_at(info, 1);
    size_t rounded = 0;
    void* ptr;
    if (device == DeviceKind::Cpu) {
      ptr = cpu::allocate(size_t(bytes), &rounded);
    } else {
      ptr = runtime_of(device).allocate(size_t(bytes), Stream{});
      rounded = CachingAllocator::round_size(size_t(bytes));
    }
    double handle;
    {
      std::lock_guard<std::mutex> lock(table_mutex);
      uint32_t slot;
      if (free_slots.empty()) {
        slot = uint32_t(table.size());
        table.emplace_back();
      } else {
        slot = free_slots.back();
        free_slots.pop_back();
      }
      Storage& s = table[slot];
      s.ptr = ptr;
      s.bytes = size_t(bytes);
      s.rounded = rounded;
      s.live = true;
      s.device = device;
      handle = double(s.generation) * kSlotSpan + double(slot);
    }
    Napi::MemoryManagement::AdjustExternalMemory(info.Env(), int64_t(rounded));
    return Napi::Number::New(info.Env(), handle);
  });
}

// free(handle): returns the block to the caching allocator; anything but a live handle is ignored.
Napi::Value Free(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {  // a device runtime's free can fail (DeviceError)
    size_t rounded = 0;
    {
      std::lock_guard<std::mutex> lock(table_mutex);
      bool known;
      uint32_t slot = 0;
      Storage* s = slot_of(info.Env(), info[0], &known, &slot);
      if (!s) return info.Env().Undefined();
      if (s->device == DeviceKind::Cpu) cpu::deallocate(s->ptr, s->rounded);
      else runtime_of(s->device).deallocate(s->ptr);
      rounded = s->rounded;
      s->live = false;
      s->ptr = nullptr;
      s->generation = (s->generation + 1) % kGenerations;
      free_slots.push_back(slot);
    }
    Napi::MemoryManagement::AdjustExternalMemory(info.Env(), -int64_t(rounded));
    return info.Env().Undefined();
  });
}

// read(handle, byteOffset, byteLength) -> ArrayBuffer copy
Napi::Value Read(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const Storage s = storage_of(info[0], "read");
    double off = num(info, 1), len = num(info, 2);
    if (!(off >= 0 && len >= 0 && off + len <= double(s.bytes))) throw_js(info.Env(), ErrorKind::Index, "read: out of range");
    auto buf = Napi::ArrayBuffer::New(info.Env(), size_t(len));
    const char* src = static_cast<char*>(s.ptr) + size_t(off);
    if (len > 0 && s.device == DeviceKind::Cpu) std::memcpy(buf.Data(), src, size_t(len));
    else if (len > 0) runtime_of(s.device).copy_to_host(buf.Data(), src, size_t(len), Stream{});
    return buf;
  });
}

// write(handle, byteOffset, typedArray)
Napi::Value Write(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const Storage s = storage_of(info[0], "write");
    double off = num(info, 1);
    if (!info[2].IsTypedArray()) throw_js(info.Env(), ErrorKind::Value, "write: expected a typed array");
    auto ta = info[2].As<Napi::TypedArray>();
    size_t len = ta.ByteLength();
    if (!(off >= 0 && off + double(len) <= double(s.bytes))) throw_js(info.Env(), ErrorKind::Index, "write: out of range");
    const char* src = static_cast<const char*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
    char* dst = static_cast<char*>(s.ptr) + size_t(off);
    if (len > 0 && s.device == DeviceKind::Cpu) std::memcpy(dst, src, len);
    else if (len > 0) runtime_of(s.device).copy_to_device(dst, src, len, Stream{});
    return info.Env().Undefined();
  });
}

// transfer(dstHandle, dstByteOffset, srcHandle, srcByteOffset, byteLength): copies bytes between
// two storages on any devices (host to device, device to host, within a device).
Napi::Value Transfer(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const Storage dst = storage_of(info[0], "transfer"), src = storage_of(info[2], "transfer");
    const double doff = num(info, 1), soff = num(info, 3), len = num(info, 4);
    if (!(doff >= 0 && soff >= 0 && len >= 0 && doff + len <= double(dst.bytes) && soff + len <= double(src.bytes)))
      throw_js(info.Env(), ErrorKind::Index, "transfer: out of range");
    char* d = static_cast<char*>(dst.ptr) + size_t(doff);
    const char* s = static_cast<const char*>(src.ptr) + size_t(soff);
    const size_t n = size_t(len);
    if (n == 0) return info.Env().Undefined();
    if (dst.device == DeviceKind::Cpu && src.device == DeviceKind::Cpu) std::memmove(d, s, n);
    else if (dst.device == DeviceKind::Cpu) runtime_of(src.device).copy_to_host(d, s, n, Stream{});
    else if (src.device == DeviceKind::Cpu) runtime_of(dst.device).copy_to_device(d, s, n, Stream{});
    else if (src.device == dst.device) runtime_of(dst.device).copy_on_device(d, s, n, Stream{});
    else fail(ErrorKind::Device, std::string("transfer: cannot copy between ") + device_name(src.device) + " and " + device_name(dst.device));
    return info.Env().Undefined();
  });
}

// memoryStats(device?), emptyCache(device?), resetPeak(device?): the device's caching allocator.
Napi::Value MemoryStats(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const DeviceKind device = device_at(info, 0);
    auto st = device == DeviceKind::Cpu ? cpu::allocator_stats() : runtime_of(device).memory_stats();
    auto o = Napi::Object::New(info.Env());
    o.Set("allocated", double(st.allocated));
    o.Set("reserved", double(st.reserved));
    o.Set("peak", double(st.peak_allocated));
    o.Set("blocks", double(st.live_blocks));
    o.Set("freshAllocations", double(st.fresh_allocations));
    return o;
  });
}

Napi::Value EmptyCache(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const DeviceKind device = device_at(info, 0);
    if (device == DeviceKind::Cpu) cpu::empty_cache();
    else runtime_of(device).empty_cache();
    return info.Env().Undefined();
  });
}

Napi::Value ResetPeak(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const DeviceKind device = device_at(info, 0);
    if (device == DeviceKind::Cpu) cpu::reset_peak();
    else runtime_of(device).reset_peak();
    return info.Env().Undefined();
  });
}

Napi::Value RuntimeInfo(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto o = Napi::Object::New(env);
  o.Set("cpuIsa", cpu::kernels().isa);
  o.Set("cpuBf16Dot", std::array<const char*, 3>{"absent", "available", "default"}[size_t(cpu::kernels().bf16_dot())]);
  o.Set("threads", cpu::num_threads());
  o.Set("builtWithCuda", cuda::built_with_cuda());
  std::string why;
  int n = cuda::device_count(&why);
  o.Set("cudaDeviceCount", n);
  o.Set("cudaUnavailableReason", why);
  auto names = Napi::Array::New(env);
  for (int i = 0; i < n; i++) names.Set(uint32_t(i), cuda::device_name(i));
  o.Set("cudaDeviceNames", names);
  o.Set("simAvailable", sim::available());
  return o;
}

// ---- the SIMT emulator's self-tests (native/sim/selftest.cu), on sim and on cuda ----------------

Napi::Value self_test_list(Napi::Env env, const std::vector<SelfTest>& tests) {
  static const char* const kinds[] = {"feature", "broken-result", "broken-error"};
  auto list = Napi::Array::New(env);
  for (const SelfTest& t : tests) {
    auto o = Napi::Object::New(env);
    o.Set("name", t.name);
    o.Set("kind", kinds[t.kind]);
    o.Set("description", t.description);
    list.Set(list.Length(), o);
  }
  return list;
}

const SelfTest& self_test_named(const std::vector<SelfTest>& tests, const Napi::Value& name, const char* fn) {
  if (!name.IsString()) fail(ErrorKind::Value, std::string(fn) + ": expected a self-test name");
  const std::string n = name.As<Napi::String>();
  for (const SelfTest& t : tests) {
    if (n == t.name) return t;
  }
  fail(ErrorKind::Value, std::string(fn) + ": no self-test named '" + n + "'");
}

Napi::Value SimSelfTests(const Napi::CallbackInfo& info) { return self_test_list(info.Env(), sim::self_tests()); }

// A build without nvcc has no CUDA self-tests (an empty list).
Napi::Value CudaSelfTests(const Napi::CallbackInfo& info) { return self_test_list(info.Env(), cuda::self_tests()); }

// simSelfTest(name, order?): "" when the kernel's result matches its reference, else the first
// mismatch; errors the emulator reports are thrown (DeviceError). `order` applies to this call
// only; without it the launch uses EMU_SIM_ORDER (default sequential).
Napi::Value SimSelfTest(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const SelfTest& test = self_test_named(sim::self_tests(), info[0], "simSelfTest");
    if (!(info[1].IsString() || info[1].IsUndefined())) fail(ErrorKind::Value, "simSelfTest: the order must be a string");
    struct Restore {
      sim::Order previous = sim::current_order();
      ~Restore() { sim::set_order(previous); }
    } restore;
    if (info[1].IsString()) sim::set_order(sim::parse_order(info[1].As<Napi::String>()));
    return Napi::String::New(info.Env(), test.run());
  });
}

// cudaSelfTest(name): the same kernel and check on the GPU; a DeviceError where there is none.
Napi::Value CudaSelfTest(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    return Napi::String::New(info.Env(), self_test_named(cuda::self_tests(), info[0], "cudaSelfTest").run());
  });
}

// simSetOrder(spec): the thread order of every later sim launch (sequential | reverse |
// random:<seed>), overriding EMU_SIM_ORDER; simOrder() names the order in force.
Napi::Value SimSetOrder(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    if (!info[0].IsString()) fail(ErrorKind::Value, "setSimOrder: the order must be a string");
    sim::set_order(sim::parse_order(info[0].As<Napi::String>()));
    return info.Env().Undefined();
  });
}

Napi::Value SimOrder(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), sim::order_name(sim::current_order()));
}

Napi::Value SimBarrierResumeNs(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const int threads = int(num(info, 0)), rounds = int(num(info, 1)), blocks = int(num(info, 2));
    if (threads < 1 || threads > 1024 || rounds < 1 || blocks < 1) {
      fail(ErrorKind::Value, "simBarrierResumeNs: expected 1..1024 threads and at least one round and block");
    }
    return Napi::Number::New(info.Env(), sim::barrier_resume_ns(threads, rounds, blocks));
  });
}

Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  int n = int(num(info, 0));
  cpu::set_num_threads(n);
  return info.Env().Undefined();
}

// ---- kernels -------------------------------------------------------------------------------
// Argument order mirrors the KernelTable entries; each View is (handle, descriptor).

using KT = cpu::KernelTable;

Napi::Value Copy(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    View out = view_at(info, 0), in = view_at(info, 2);
    check_like(info.Env(), "copy", out, in, in.dtype);
    kernel_for(&KT::copy, "copy", {&out, &in})(out, in);
    return info.Env().Undefined();
  });
}

Napi::Value Fill(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    View out = view_at(info, 0);
    kernel_for(&KT::fill, "fill", {&out})(out, num(info, 2));
    return info.Env().Undefined();
  });
}

Napi::Value Unary(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    int op = int(num(info, 0));
    if (op < 0 || op >= int(cpu::UnaryOp::Count)) throw_js(info.Env(), ErrorKind::Value, "unary: bad op");
    View out = view_at(info, 1), in = view_at(info, 3);
    const auto u = cpu::UnaryOp(op);
    const bool pred = u == cpu::UnaryOp::LogicalNot || u == cpu::UnaryOp::IsFinite || u == cpu::UnaryOp::IsNaN;
    check_like(info.Env(), "unary", in, out, pred ? DType::Bool : in.dtype);
    kernel_for(&KT::unary, "unary", {&out, &in})(u, out, in, num(info, 5), num(info, 6));
    return info.Env().Undefined();
  });
}

Napi::Value Binary(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    int op = int(num(info, 0));
    if (op < 0 || op >= int(cpu::BinaryOp::Count)) throw_js(info.Env(), ErrorKind::Value, "binary: bad op");
    View out = view_at(info, 1), a = view_at(info, 3), b = view_at(info, 5);
    const bool pred = op >= int(cpu::BinaryOp::Eq) && op <= int(cpu::BinaryOp::LogicalXor);
    check_like(info.Env(), "binary", out, a, a.dtype);
    check_like(info.Env(), "binary", out, b, a.dtype);
    check_like(info.Env(), "binary", a, out, pred ? DType::Bool : a.dtype);
    kernel_for(&KT::binary, "binary", {&out, &a, &b})(cpu::BinaryOp(op), out, a, b);
    return info.Env().Undefined();
  });
}

Napi::Value Where(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    View out = view_at(info, 0), c = view_at(info, 2), a = view_at(info, 4), b = view_at(info, 6);
    check_like(info.Env(), "where", out, c, DType::Bool);
    check_like(info.Env(), "where", out, a, out.dtype);
    check_like(info.Env(), "where", out, b, out.dtype);
    kernel_for(&KT::where, "where", {&out, &c, &a, &b})(out, c, a, b);
    return info.Env().Undefined();
  });
}

// rope(out, x, cos, sin, inverse): x, cos, sin seen with out's shape; the last dim even.
Napi::Value Rope(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    View out = view_at(info, 0), x = view_at(info, 2), c = view_at(info, 4), s = view_at(info, 6);
    for (const View* v : {&x, &c, &s}) check_like(info.Env(), "rope", out, *v, out.dtype);
    if (out.ndim == 0 || out.shape[out.ndim - 1] % 2 != 0) throw_js(info.Env(), ErrorKind::Shape, "rope: the last dim must be even");
    kernel_for(&KT::rope, "rope", {&out, &x, &c, &s})(out, x, c, s, info[8].ToBoolean());
    return info.Env().Undefined();
  });
}

Napi::Value Reduce(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    int op = int(num(info, 0));
    if (op < 0 || op >= int(cpu::ReduceOp::Count)) throw_js(info.Env(), ErrorKind::Value, "reduce: bad op");
    View in = view_at(info, 3);
    int nkeep = int(num(info, 5));
    if (nkeep < 0 || nkeep > in.ndim) throw_js(info.Env(), ErrorKind::Shape, "reduce: bad kept-dim count");
    View out = view_at(info, 1);
    if (!out.contiguous()) throw_js(info.Env(), ErrorKind::Shape, "reduce: output must be contiguous");
    kernel_for(&KT::reduce, "reduce", {&out, &in})(cpu::ReduceOp(op), out, in, nkeep, num(info, 6));
    return info.Env().Undefined();
  });
}

int dim_arg(const Napi::CallbackInfo& info, size_t i, const View& v, const char* op) {
  int d = int(num(info, i));
  if (d < 0 || d >= v.ndim) throw_js(info.Env(), ErrorKind::Shape, std::string(op) + ": dim out of range");
  return d;
}

Napi::Value Softmax(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    View in = view_at(info, 2);
    View out = view_at(info, 0);
    kernel_for(&KT::softmax, "softmax", {&out, &in})(out, in, dim_arg(info, 4, in, "softmax"), info[5].ToBoolean());
    return info.Env().Undefined();
  });
}

Napi::Value Cumsum(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    View in = view_at(info, 2);
    View out = view_at(info, 0);
    kernel_for(&KT::cumsum, "cumsum", {&out, &in})(out, in, dim_arg(info, 4, in, "cumsum"));
    return info.Env().Undefined();
  });
}

Napi::Value Matmul(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    View out = view_at(info, 0), a = view_at(info, 2), b = view_at(info, 4);
    if (out.ndim != 3 || a.ndim != 3 || b.ndim != 3 || a.shape[2] != b.shape[1] || out.shape[0] != a.shape[0] ||
        out.shape[0] != b.shape[0] || out.shape[1] != a.shape[1] || out.shape[2] != b.shape[2])
      throw_js(info.Env(), ErrorKind::Shape, "matmul: native views do not line up");
    kernel_for(&KT::matmul, "matmul", {&out, &a, &b})(out, a, b);
    return info.Env().Undefined();
  });
}

// matmulVersion(version, out, a, b): matmul through one kernel version (bench/ compares them).
Napi::Value MatmulVersion(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    View out = view_at(info, 1), a = view_at(info, 3), b = view_at(info, 5);
    kernel_for(&KT::matmul_version, "matmulVersion", {&out, &a, &b})(int(num(info, 0)), out, a, b);
    return info.Env().Undefined();
  });
}

// conv2dSetVersion(device, version): the conv2d kernel version (native/cuda/conv.cu) that the
// device's conv2d and conv2d gradient entries run from now on; 0 is the dispatcher's choice.
Napi::Value Conv2dSetVersion(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const DeviceKind d = device_at(info, 0);
    const auto set = table_of(d).set_conv2d_version;
    if (!set) fail(ErrorKind::Device, std::string("conv2dSetVersion: device ") + device_name(d) + " has no conv2d kernel versions");
    const double v = num(info, 1);
    if (!(v == std::floor(v) && std::fabs(v) < 1e9)) fail(ErrorKind::Value, "conv2dSetVersion: the version must be an integer");
    set(int(v));
    return info.Env().Undefined();
  });
}

// conv2dLastKernel(device): the kernel the device's last conv2d call (forward or gradient) launched.
Napi::Value Conv2dLastKernel(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const DeviceKind d = device_at(info, 0);
    const auto last = table_of(d).conv2d_last_kernel;
    if (!last) fail(ErrorKind::Device, std::string("conv2dLastKernel: device ") + device_name(d) + " has no conv2d kernel versions");
    return Napi::String::New(info.Env(), last());
  });
}

Napi::Value Gather(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    View in = view_at(info, 2);
    View out = view_at(info, 0), index = view_at(info, 5);
    kernel_for(&KT::gather, "gather", {&out, &in, &index})(out, in, dim_arg(info, 4, in, "gather"), index);
    return info.Env().Undefined();
  });
}

Napi::Value ScatterAdd(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    View out = view_at(info, 0);
    View index = view_at(info, 3), src = view_at(info, 5);
    kernel_for(&KT::scatter_add, "scatterAdd", {&out, &index, &src})(out, dim_arg(info, 2, out, "scatterAdd"), index, src);
    return info.Env().Undefined();
  });
}

Napi::Value IndexSelect(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    View in = view_at(info, 2);
    View out = view_at(info, 0), index = view_at(info, 5);
    kernel_for(&KT::index_select, "indexSelect", {&out, &in, &index})(out, in, dim_arg(info, 4, in, "indexSelect"), index);
    return info.Env().Undefined();
  });
}

Napi::Value Triangle(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    View out = view_at(info, 0), in = view_at(info, 2);
    kernel_for(&KT::triangle, "tril/triu", {&out, &in})(out, in, int64_t(num(info, 4)), info[5].ToBoolean());
    return info.Env().Undefined();
  });
}

uint64_t u64(const Napi::CallbackInfo& info, size_t i) { return uint64_t(num(info, i)); }

Napi::Value RandUniform(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    View out = view_at(info, 0);
    kernel_for(&KT::rand_uniform, "rand", {&out})(out, u64(info, 2), u64(info, 3), num(info, 4), num(info, 5));
    return info.Env().Undefined();
  });
}

Napi::Value RandNormal(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    View out = view_at(info, 0);
    kernel_for(&KT::rand_normal, "randn", {&out})(out, u64(info, 2), u64(info, 3), num(info, 4), num(info, 5));
    return info.Env().Undefined();
  });
}

Napi::Value RandInt(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    double lo = num(info, 4), hi = num(info, 5);
    if (!(hi > lo) || hi - lo > 4294967296.0) throw_js(info.Env(), ErrorKind::Value, "randint: bad range");
    View out = view_at(info, 0);
    kernel_for(&KT::rand_int, "randint", {&out})(out, u64(info, 2), u64(info, 3), int64_t(lo), int64_t(hi));
    return info.Env().Undefined();
  });
}

Napi::Value Randperm(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    View out = view_at(info, 0);
    kernel_for(&KT::randperm, "randperm", {&out})(out, u64(info, 2), u64(info, 3));
    return info.Env().Undefined();
  });
}

// conv2d(out, in, weight, bias|null, sh, sw, ph, pw, dh, dw, groups)
Napi::Value Conv2d(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    View out = view_at(info, 0), in = view_at(info, 2), w = view_at(info, 4);
    bool has_bias = !info[6].IsNull() && !info[6].IsUndefined();
    View bias;
    if (has_bias) bias = view_at(info, 6);
    int64_t p[7];
    ints(info, 8, p, 7);
    kernel_for(&KT::conv2d, "conv2d", {&out, &in, &w, has_bias ? &bias : &out})(out, in, w, has_bias ? &bias : nullptr, p, p + 2, p + 4, p[6]);
    return info.Env().Undefined();
  });
}

// maxPool2d(out, indices|null, in, kh, kw, sh, sw, ph, pw, dh, dw)
Napi::Value MaxPool2d(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    View out = view_at(info, 0), in = view_at(info, 4);
    bool has_idx = !info[2].IsNull() && !info[2].IsUndefined();
    View idx;
    if (has_idx) idx = view_at(info, 2);
    int64_t p[8];
    ints(info, 6, p, 8);
    kernel_for(&KT::max_pool2d, "maxPool2d", {&out, &in, has_idx ? &idx : &out})(out, has_idx ? &idx : nullptr, in, p, p + 2, p + 4, p + 6);
    return info.Env().Undefined();
  });
}

// avgPool2d(out, in, kh, kw, sh, sw, ph, pw, countIncludePad)
Napi::Value AvgPool2d(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    int64_t p[6];
    ints(info, 4, p, 6);
    View out = view_at(info, 0), in = view_at(info, 2);
    kernel_for(&KT::avg_pool2d, "avgPool2d", {&out, &in})(out, in, p, p + 2, p + 4, info[10].ToBoolean());
    return info.Env().Undefined();
  });
}

Napi::Value UpsampleNearest2d(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    View out = view_at(info, 0), in = view_at(info, 2);
    kernel_for(&KT::upsample_nearest2d, "upsampleNearest2d", {&out, &in})(out, in);
    return info.Env().Undefined();
  });
}

// conv2dBackwardInput(gradIn, gradOut, weight, sh, sw, ph, pw, dh, dw, groups)
Napi::Value Conv2dBackwardInput(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    int64_t p[7];
    ints(info, 6, p, 7);
    View gi = view_at(info, 0), go = view_at(info, 2), w = view_at(info, 4);
    kernel_for(&KT::conv2d_backward_input, "conv2dBackwardInput", {&gi, &go, &w})(gi, go, w, p, p + 2, p + 4, p[6]);
    return info.Env().Undefined();
  });
}

// conv2dBackwardWeight(gradW, gradBias|null, gradOut, in, sh, sw, ph, pw, dh, dw, groups)
Napi::Value Conv2dBackwardWeight(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    View gw = view_at(info, 0), go = view_at(info, 4), in = view_at(info, 6);
    bool has_bias = !info[2].IsNull() && !info[2].IsUndefined();
    View gb;
    if (has_bias) gb = view_at(info, 2);
    int64_t p[7];
    ints(info, 8, p, 7);
    kernel_for(&KT::conv2d_backward_weight, "conv2dBackwardWeight", {&gw, &go, &in, has_bias ? &gb : &gw})(gw, has_bias ? &gb : nullptr, go, in, p, p + 2, p + 4, p[6]);
    return info.Env().Undefined();
  });
}

// avgPool2dBackward(gradIn, gradOut, kh, kw, sh, sw, ph, pw, countIncludePad)
Napi::Value AvgPool2dBackward(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    int64_t p[6];
    ints(info, 4, p, 6);
    View gi = view_at(info, 0), go = view_at(info, 2);
    kernel_for(&KT::avg_pool2d_backward, "avgPool2dBackward", {&gi, &go})(gi, go, p, p + 2, p + 4, info[10].ToBoolean());
    return info.Env().Undefined();
  });
}

Napi::Value UpsampleNearest2dBackward(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    View gi = view_at(info, 0), go = view_at(info, 2);
    kernel_for(&KT::upsample_nearest2d_backward, "upsampleNearest2dBackward", {&gi, &go})(gi, go);
    return info.Env().Undefined();
  });
}

// peakGflops(iters), triadGbps(n, reps): the machine's roofline, measured (bench/ prints it).
Napi::Value PeakGflops(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), cpu::kernels().peak_gflops(int64_t(num(info, 0))));
}

Napi::Value TriadGbps(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    return Napi::Number::New(info.Env(), cpu::kernels().triad_gbps(int64_t(num(info, 0)), int(num(info, 1))));
  });
}

// ---- fused kernels (native/cpu/fused.h) ----------------------------------------------------

// The fused kernels index their operands by shape, so every operand's shape and dtype is checked
// here against the one the op implies.
void expect(Napi::Env env, const char* op, const char* arg, const View& v, DType dtype, std::initializer_list<int64_t> shape) {
  bool ok = v.dtype == dtype && v.ndim == int(shape.size());
  int k = 0;
  for (int64_t n : shape) ok = ok && v.shape[k++] == n;
  if (!ok) throw_js(env, ErrorKind::Shape, std::string(op) + ": native view " + arg + " has the wrong shape or dtype");
}

bool present(const Napi::CallbackInfo& info, size_t i) { return !info[i].IsNull() && !info[i].IsUndefined(); }

DType float_dtype(Napi::Env env, const char* op, const View& x) {
  if (x.dtype != DType::F32 && x.dtype != DType::F64) throw_js(env, ErrorKind::DType, std::string(op) + ": f32 or f64 only");
  return x.dtype;
}

// The row kernels (norms, cross-entropy, SwiGLU) take any float dtype here; a device whose kernel
// does not take bf16 or f16 (the CPU's) raises its own DTypeError.
DType any_float_dtype(Napi::Env env, const char* op, const View& x) {
  if (x.dtype != DType::F32 && x.dtype != DType::F64 && x.dtype != DType::BF16 && x.dtype != DType::F16)
    throw_js(env, ErrorKind::DType, std::string(op) + ": expected a float dtype, got " + dtype_name(x.dtype));
  return x.dtype;
}

// The dtype of saved row statistics (attention's and cross-entropy's log-sum-exp, the norms' mean
// and rstd, cross-entropy's per-row loss): f32 for bf16 and f16 operands (a 16-bit lse would be
// too coarse to recompute the probabilities from), the operands' own otherwise.
DType stat_dtype(DType dt) { return dt == DType::BF16 || dt == DType::F16 ? DType::F32 : dt; }

// The attention operands at info[first..]: q, k, v, bias|null, kpm|null, then scale, causal.
struct AttentionOperands {
  View q, k, v, bias, kpm;
  bool has_bias, has_kpm;
  double scale;
  bool causal;
  int64_t B, H, Lq, Lk, D, Dv;
};

AttentionOperands attention_operands(const Napi::CallbackInfo& info, size_t first) {
  Napi::Env env = info.Env();
  AttentionOperands a;
  a.q = view_at(info, first);
  a.k = view_at(info, first + 2);
  a.v = view_at(info, first + 4);
  if (a.q.ndim != 4 || a.k.ndim != 4 || a.v.ndim != 4) throw_js(env, ErrorKind::Shape, "attention: q, k and v must be 4-d native views");
  a.B = a.q.shape[0], a.H = a.q.shape[1], a.Lq = a.q.shape[2], a.D = a.q.shape[3];
  a.Lk = a.k.shape[2], a.Dv = a.v.shape[3];
  const DType dt = a.q.dtype;
  any_float_dtype(env, "attention", a.q);
  expect(env, "attention", "k", a.k, dt, {a.B, a.H, a.Lk, a.D});
  expect(env, "attention", "v", a.v, dt, {a.B, a.H, a.Lk, a.Dv});
  a.has_bias = present(info, first + 6);
  if (a.has_bias) expect(env, "attention", "bias", a.bias = view_at(info, first + 6), dt, {a.B, a.H, a.Lq, a.Lk});
  a.has_kpm = present(info, first + 8);
  if (a.has_kpm) expect(env, "attention", "keyPaddingMask", a.kpm = view_at(info, first + 8), DType::Bool, {a.B, a.Lk});
  a.scale = num(info, first + 10);
  a.causal = info[first + 11].ToBoolean();
  return a;
}

// attention(out, lse, q, k, v, bias|null, kpm|null, scale, causal)
Napi::Value Attention(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const AttentionOperands a = attention_operands(info, 4);
    View out = view_at(info, 0), lse = view_at(info, 2);
    expect(env, "attention", "out", out, a.q.dtype, {a.B, a.H, a.Lq, a.Dv});
    expect(env, "attention", "lse", lse, stat_dtype(a.q.dtype), {a.B, a.H, a.Lq});
    fused_for(&cpu::FusedKernels::attention, "attention",
              {&out, &lse, &a.q, &a.k, &a.v, a.has_bias ? &a.bias : nullptr, a.has_kpm ? &a.kpm : nullptr})(
        out, lse, a.q, a.k, a.v, a.has_bias ? &a.bias : nullptr, a.has_kpm ? &a.kpm : nullptr,
                                   a.scale, a.causal);
    return env.Undefined();
  });
}

// attentionBackward(dq, dk, dv, dbias|null, dout, out, lse, q, k, v, bias|null, kpm|null, scale, causal)
Napi::Value AttentionBackward(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const AttentionOperands a = attention_operands(info, 14);
    const DType dt = a.q.dtype;
    View dq = view_at(info, 0), dk = view_at(info, 2), dv = view_at(info, 4), dbias;
    View dout = view_at(info, 8), out = view_at(info, 10), lse = view_at(info, 12);
    expect(env, "attentionBackward", "dq", dq, dt, {a.B, a.H, a.Lq, a.D});
    expect(env, "attentionBackward", "dk", dk, dt, {a.B, a.H, a.Lk, a.D});
    expect(env, "attentionBackward", "dv", dv, dt, {a.B, a.H, a.Lk, a.Dv});
    expect(env, "attentionBackward", "dout", dout, dt, {a.B, a.H, a.Lq, a.Dv});
    expect(env, "attentionBackward", "out", out, dt, {a.B, a.H, a.Lq, a.Dv});
    expect(env, "attentionBackward", "lse", lse, stat_dtype(dt), {a.B, a.H, a.Lq});
    const bool has_dbias = present(info, 6);
    if (has_dbias) expect(env, "attentionBackward", "dbias", dbias = view_at(info, 6), dt, {a.B, a.H, a.Lq, a.Lk});
    fused_for(&cpu::FusedKernels::attention_backward, "attentionBackward",
              {&dq, &dk, &dv, has_dbias ? &dbias : nullptr, &dout, &out, &lse, &a.q, &a.k, &a.v,
               a.has_bias ? &a.bias : nullptr, a.has_kpm ? &a.kpm : nullptr})(
        dq, dk, dv, has_dbias ? &dbias : nullptr, dout, out, lse, a.q, a.k, a.v,
                                            a.has_bias ? &a.bias : nullptr, a.has_kpm ? &a.kpm : nullptr, a.scale,
                                            a.causal);
    return env.Undefined();
  });
}

// attentionVersion(device, version) and normVersion(device, version): force one attention (or
// LayerNorm / RMSNorm) kernel version on the device (0: the default); tests and benchmarks run each
// version this way. A device with one version (a null setter in its table) is a DeviceError.
Napi::Value ForceVersion(const Napi::CallbackInfo& info, void (*cpu::FusedKernels::*setter)(int), const char* op, const char* what) {
  return guarded(info, [&]() -> Napi::Value {
    const DeviceKind d = device_at(info, 0);
    auto set = fused_table_of(d).*setter;
    if (!set) fail(ErrorKind::Device, std::string(op) + ": " + device_name(d) + " has one " + what + " version only");
    set(int(num(info, 1)));
    return info.Env().Undefined();
  });
}

Napi::Value AttentionVersion(const Napi::CallbackInfo& info) {
  return ForceVersion(info, &cpu::FusedKernels::attention_version, "attentionVersion", "attention");
}

Napi::Value NormVersion(const Napi::CallbackInfo& info) {
  return ForceVersion(info, &cpu::FusedKernels::norm_version, "normVersion", "norm");
}

// An optional view at info[i] (null or undefined: absent).
struct OptView {
  View v;
  bool present = false;
  const View* get() const { return present ? &v : nullptr; }
};

OptView opt_view(const Napi::CallbackInfo& info, size_t i) {
  OptView o;
  o.present = present(info, i);
  if (o.present) o.v = view_at(info, i);
  return o;
}


// normForward(y, mean|null, rstd, x, w|null, b|null, eps): LayerNorm, or RMSNorm without mean.
Napi::Value NormForward(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const char* op = "norm";
    View x = view_at(info, 6);
    if (x.ndim != 2) throw_js(env, ErrorKind::Shape, "norm: x must be a 2-d native view");
    const DType dt = any_float_dtype(env, op, x), st = stat_dtype(dt);
    const int64_t N = x.shape[0], D = x.shape[1];
    View y = view_at(info, 0), rstd = view_at(info, 4);
    OptView mean = opt_view(info, 2), w = opt_view(info, 8), b = opt_view(info, 10);
    expect(env, op, "y", y, dt, {N, D});
    expect(env, op, "rstd", rstd, st, {N});
    if (mean.present) expect(env, op, "mean", mean.v, st, {N});
    if (w.present) expect(env, op, "weight", w.v, dt, {D});
    if (b.present) expect(env, op, "bias", b.v, dt, {D});
    fused_for(&cpu::FusedKernels::norm_forward, op, {&y, mean.get(), &rstd, &x, w.get(), b.get()})(y, mean.get(), rstd, x, w.get(), b.get(), num(info, 12));
    return env.Undefined();
  });
}

// normBackward(dx, dw|null, db|null, dy, x, w|null, mean|null, rstd)
Napi::Value NormBackward(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const char* op = "normBackward";
    View x = view_at(info, 8);
    if (x.ndim != 2) throw_js(env, ErrorKind::Shape, "normBackward: x must be a 2-d native view");
    const DType dt = any_float_dtype(env, op, x), st = stat_dtype(dt);
    const int64_t N = x.shape[0], D = x.shape[1];
    View dx = view_at(info, 0), dy = view_at(info, 6), rstd = view_at(info, 14);
    OptView dw = opt_view(info, 2), db = opt_view(info, 4), w = opt_view(info, 10), mean = opt_view(info, 12);
    expect(env, op, "dx", dx, dt, {N, D});
    expect(env, op, "dy", dy, dt, {N, D});
    expect(env, op, "rstd", rstd, st, {N});
    for (const OptView* o : {&dw, &db, &w})
      if (o->present) expect(env, op, "weight", o->v, dt, {D});
    if (mean.present) expect(env, op, "mean", mean.v, st, {N});
    fused_for(&cpu::FusedKernels::norm_backward, op, {&dx, dw.get(), db.get(), &dy, &x, w.get(), mean.get(), &rstd})(dx, dw.get(), db.get(), dy, x, w.get(), mean.get(), rstd);
    return env.Undefined();
  });
}

// GroupNorm's rows x [R, D] with `inner` elements per channel: the channel count C of its [C]
// vectors (C / G channels per row, G groups dividing R); throws a ShapeError where they do not fit.
int64_t group_channels(Napi::Env env, const char* op, const View& x, int64_t inner, std::initializer_list<const OptView*> per_channel) {
  const int64_t R = x.shape[0], D = x.shape[1];
  if (inner < 1 || D % inner != 0)
    throw_js(env, ErrorKind::Shape, std::string(op) + ": inner " + std::to_string(inner) + " must be a positive divisor of the row length " + std::to_string(D));
  const int64_t per_row = D / inner;
  int64_t C = -1;
  for (const OptView* o : per_channel) {
    if (!o->present) continue;
    if (C < 0) C = o->v.ndim == 1 ? o->v.shape[0] : -1;
    if (C <= 0 || C % per_row != 0 || R % (C / per_row) != 0)
      throw_js(env, ErrorKind::Shape, std::string(op) + ": per-channel vectors must have shape [C] with C a multiple of the " +
                                          std::to_string(per_row) + " channels of a row and C / " + std::to_string(per_row) + " groups dividing the " + std::to_string(R) + " rows");
  }
  return C < 0 ? per_row : C;
}

// groupNormForward(y, mean, rstd, x, w|null, b|null, eps, inner): GroupNorm with its affine.
Napi::Value GroupNormForward(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const char* op = "groupNorm";
    View x = view_at(info, 6);
    if (x.ndim != 2) throw_js(env, ErrorKind::Shape, "groupNorm: x must be a 2-d native view");
    const DType dt = any_float_dtype(env, op, x), st = stat_dtype(dt);
    const int64_t N = x.shape[0], D = x.shape[1];
    View y = view_at(info, 0), mean = view_at(info, 2), rstd = view_at(info, 4);
    OptView w = opt_view(info, 8), b = opt_view(info, 10);
    const int64_t inner = int64_t(num(info, 13));
    const int64_t C = group_channels(env, op, x, inner, {&w, &b});
    expect(env, op, "y", y, dt, {N, D});
    expect(env, op, "mean", mean, st, {N});
    expect(env, op, "rstd", rstd, st, {N});
    if (w.present) expect(env, op, "weight", w.v, dt, {C});
    if (b.present) expect(env, op, "bias", b.v, dt, {C});
    fused_for(&cpu::FusedKernels::group_norm_forward, op, {&y, &mean, &rstd, &x, w.get(), b.get()})(y, mean, rstd, x, w.get(), b.get(), num(info, 12), inner);
    return env.Undefined();
  });
}

// groupNormBackward(dx, dw|null, db|null, dy, x, w|null, mean, rstd, inner)
Napi::Value GroupNormBackward(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const char* op = "groupNormBackward";
    View x = view_at(info, 8);
    if (x.ndim != 2) throw_js(env, ErrorKind::Shape, "groupNormBackward: x must be a 2-d native view");
    const DType dt = any_float_dtype(env, op, x), st = stat_dtype(dt);
    const int64_t N = x.shape[0], D = x.shape[1];
    View dx = view_at(info, 0), dy = view_at(info, 6), mean = view_at(info, 12), rstd = view_at(info, 14);
    OptView dw = opt_view(info, 2), db = opt_view(info, 4), w = opt_view(info, 10);
    const int64_t inner = int64_t(num(info, 16));
    const int64_t C = group_channels(env, op, x, inner, {&w, &dw, &db});
    expect(env, op, "dx", dx, dt, {N, D});
    expect(env, op, "dy", dy, dt, {N, D});
    expect(env, op, "mean", mean, st, {N});
    expect(env, op, "rstd", rstd, st, {N});
    for (const OptView* o : {&dw, &db, &w})
      if (o->present) expect(env, op, "weight", o->v, dt, {C});
    fused_for(&cpu::FusedKernels::group_norm_backward, op, {&dx, dw.get(), db.get(), &dy, &x, w.get(), &mean, &rstd})(dx, dw.get(), db.get(), dy, x, w.get(), mean, rstd, inner);
    return env.Undefined();
  });
}

// The cross-entropy operands: logits [N, V] at info[i], targets i32 [N] at info[i + 2].
void check_logits(Napi::Env env, const View& logits, const View& targets) {
  if (logits.ndim != 2) throw_js(env, ErrorKind::Shape, "crossEntropy: logits must be a 2-d native view");
  any_float_dtype(env, "crossEntropy", logits);
  expect(env, "crossEntropy", "targets", targets, DType::I32, {logits.shape[0]});
}

// crossEntropy(loss, lse, logits, targets, ignoreIndex, smoothing)
Napi::Value CrossEntropy(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    View loss = view_at(info, 0), lse = view_at(info, 2), logits = view_at(info, 4), targets = view_at(info, 6);
    check_logits(env, logits, targets);
    expect(env, "crossEntropy", "loss", loss, stat_dtype(logits.dtype), {logits.shape[0]});
    expect(env, "crossEntropy", "lse", lse, stat_dtype(logits.dtype), {logits.shape[0]});
    fused_for(&cpu::FusedKernels::cross_entropy, "crossEntropy", {&loss, &lse, &logits, &targets})(loss, lse, logits, targets, int64_t(num(info, 8)), num(info, 9));
    return env.Undefined();
  });
}

// crossEntropyBackward(dlogits, dloss, logits, lse, targets, ignoreIndex, smoothing)
Napi::Value CrossEntropyBackward(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    View dlogits = view_at(info, 0), dloss = view_at(info, 2), logits = view_at(info, 4), lse = view_at(info, 6);
    View targets = view_at(info, 8);
    check_logits(env, logits, targets);
    expect(env, "crossEntropy", "dlogits", dlogits, logits.dtype, {logits.shape[0], logits.shape[1]});
    expect(env, "crossEntropy", "dloss", dloss, stat_dtype(logits.dtype), {logits.shape[0]});
    expect(env, "crossEntropy", "lse", lse, stat_dtype(logits.dtype), {logits.shape[0]});
    fused_for(&cpu::FusedKernels::cross_entropy_backward, "crossEntropyBackward", {&dlogits, &dloss, &logits, &lse, &targets})(
        dlogits, dloss, logits, lse, targets, int64_t(num(info, 10)), num(info, 11));
    return env.Undefined();
  });
}

// adamw(p, g, m, v, lr, beta1, beta2, eps, weightDecay, bias2, stepSize): one step of p in place.
Napi::Value AdamW(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    View p = view_at(info, 0), g = view_at(info, 2), m = view_at(info, 4), v = view_at(info, 6);
    const DType dt = float_dtype(env, "adamw", p);
    for (const View* o : {&g, &m, &v}) check_like(env, "adamw", p, *o, dt);
    cpu::AdamWHyper h;
    double* fields[7] = {&h.lr, &h.beta1, &h.beta2, &h.eps, &h.weight_decay, &h.bias2, &h.step_size};
    for (int k = 0; k < 7; k++) *fields[k] = num(info, 8 + k);
    fused_for(&cpu::FusedKernels::adamw, "adamw", {&p, &g, &m, &v})(p, g, m, v, h);
    return env.Undefined();
  });
}

// adamwMixed(p16, master, g16, m, v, lr, beta1, beta2, eps, weightDecay, bias2, stepSize): AdamW for
// a bf16 or f16 parameter through its f32 master copy, in one pass (cpu/fused.h).
Napi::Value AdamWMixed(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    View p16 = view_at(info, 0), master = view_at(info, 2), g16 = view_at(info, 4), m = view_at(info, 6), v = view_at(info, 8);
    if (p16.dtype != DType::BF16 && p16.dtype != DType::F16) throw_js(env, ErrorKind::DType, "adamwMixed: the parameter must be bf16 or f16");
    check_like(env, "adamwMixed", p16, g16, p16.dtype);
    for (const View* o : {&master, &m, &v}) check_like(env, "adamwMixed", p16, *o, DType::F32);
    cpu::AdamWHyper h;
    double* fields[7] = {&h.lr, &h.beta1, &h.beta2, &h.eps, &h.weight_decay, &h.bias2, &h.step_size};
    for (int k = 0; k < 7; k++) *fields[k] = num(info, 10 + k);
    fused_for(&cpu::FusedKernels::adamw_mixed, "adamwMixed", {&p16, &master, &g16, &m, &v})(p16, master, g16, m, v, h);
    return env.Undefined();
  });
}

// swiglu(out, a, b): out = silu(a) * b; a, b and out of one shape and float dtype.
Napi::Value Swiglu(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    View out = view_at(info, 0), a = view_at(info, 2), b = view_at(info, 4);
    const DType dt = any_float_dtype(env, "swiglu", a);
    for (const View* o : {&out, &b}) check_like(env, "swiglu", a, *o, dt);
    fused_for(&cpu::FusedKernels::swiglu, "swiglu", {&out, &a, &b})(out, a, b);
    return env.Undefined();
  });
}

// swigluBackward(da, db, dout, a, b)
Napi::Value SwigluBackward(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    View da = view_at(info, 0), db = view_at(info, 2), dout = view_at(info, 4), a = view_at(info, 6), b = view_at(info, 8);
    const DType dt = any_float_dtype(env, "swigluBackward", a);
    for (const View* o : {&da, &db, &dout, &b}) check_like(env, "swigluBackward", a, *o, dt);
    fused_for(&cpu::FusedKernels::swiglu_backward, "swigluBackward", {&da, &db, &dout, &a, &b})(da, db, dout, a, b);
    return env.Undefined();
  });
}

// linear(out, pre|null, x, w, bias|null, residual|null, act, version): out = act(x w^T + bias) +
// residual in one GEMM with a fused epilogue (cpu/fused.h); act is a UnaryOp code or -1.
Napi::Value Linear(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    View out = view_at(info, 0), x = view_at(info, 4), w = view_at(info, 6);
    OptView pre = opt_view(info, 2), bias = opt_view(info, 8), residual = opt_view(info, 10);
    fused_for(&cpu::FusedKernels::linear, "linear", {&out, pre.get(), &x, &w, bias.get(), residual.get()})(
        out, pre.get(), x, w, bias.get(), residual.get(), int(num(info, 12)), int(num(info, 13)));
    return env.Undefined();
  });
}

Napi::Object Module(Napi::Env env, Napi::Object exports) {
  auto def = [&](const char* name, Napi::Value (*fn)(const Napi::CallbackInfo&)) {
    exports.Set(name, Napi::Function::New(env, fn, name));
  };
  def("init", Init);
  def("alloc", Alloc);
  def("free", Free);
  def("read", Read);
  def("write", Write);
  def("transfer", Transfer);
  def("memoryStats", MemoryStats);
  def("emptyCache", EmptyCache);
  def("resetPeak", ResetPeak);
  def("runtimeInfo", RuntimeInfo);
  def("fusedKernels", FusedKernelNames);
  def("setNumThreads", SetNumThreads);
  def("simSelfTests", SimSelfTests);
  def("simSelfTest", SimSelfTest);
  def("cudaSelfTests", CudaSelfTests);
  def("cudaSelfTest", CudaSelfTest);
  def("simBarrierResumeNs", SimBarrierResumeNs);
  def("simSetOrder", SimSetOrder);
  def("simOrder", SimOrder);
  def("copy", Copy);
  def("fill", Fill);
  def("unary", Unary);
  def("binary", Binary);
  def("where", Where);
  def("rope", Rope);
  def("reduce", Reduce);
  def("softmax", Softmax);
  def("cumsum", Cumsum);
  def("matmul", Matmul);
  def("matmulVersion", MatmulVersion);
  def("gather", Gather);
  def("scatterAdd", ScatterAdd);
  def("indexSelect", IndexSelect);
  def("triangle", Triangle);
  def("randUniform", RandUniform);
  def("randNormal", RandNormal);
  def("randInt", RandInt);
  def("randperm", Randperm);
  def("conv2d", Conv2d);
  def("maxPool2d", MaxPool2d);
  def("avgPool2d", AvgPool2d);
  def("upsampleNearest2d", UpsampleNearest2d);
  def("conv2dBackwardInput", Conv2dBackwardInput);
  def("conv2dBackwardWeight", Conv2dBackwardWeight);
  def("conv2dSetVersion", Conv2dSetVersion);
  def("conv2dLastKernel", Conv2dLastKernel);
  def("avgPool2dBackward", AvgPool2dBackward);
  def("upsampleNearest2dBackward", UpsampleNearest2dBackward);
  def("peakGflops", PeakGflops);
  def("triadGbps", TriadGbps);
  def("attention", Attention);
  def("attentionBackward", AttentionBackward);
  def("attentionVersion", AttentionVersion);
  def("normVersion", NormVersion);
  def("normForward", NormForward);
  def("normBackward", NormBackward);
  def("groupNormForward", GroupNormForward);
  def("groupNormBackward", GroupNormBackward);
  def("crossEntropy", CrossEntropy);
  def("crossEntropyBackward", CrossEntropyBackward);
  def("adamw", AdamW);
  def("swiglu", Swiglu);
  def("swigluBackward", SwigluBackward);
  def("linear", Linear);
  def("adamwMixed", AdamWMixed);
  return exports;
}

}  // namespace
}  // namespace emu

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return emu::Module(env, exports); }
NODE_API_MODULE(emu_native, InitModule)
