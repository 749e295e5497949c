// bench.h: what every GPU bench driver (bench/gpu/*_bench.cpp) shares, in the llm.c dev/cuda
// way: each driver is one kernel family's main(), checking the device's kernels against the CPU
// kernels first and timing them after; this header holds the common parts so that no driver
// repeats another's.
//
//   Bench       the command line (--device cuda|sim|cpu, --check-only or --small, --json FILE), the
//               device's kernel tables and runtime, one row per case, the exit status
//   HostTensor  f32 values on the host (the CPU reference's side), filled with Philox uniforms
//   DeviceTensor device memory of any dtype, uploaded from / downloaded to a HostTensor
//   Measure     inside one case: compare a device result with the CPU's (relative L2 error
//               against a tolerance per dtype, no NaN/Inf, outputs poisoned with NaN first so an
//               unwritten element fails), then time the kernel with events
//
// The drivers are plain C++ against cuda/runtime.h and cuda/kernels.h, so the same binary runs on
// the GPU (`cuda`) or the emulator (`sim`): the device is a run-time choice. `cpu` runs the CPU's
// own tables through the same code, checked against themselves: a test of the drivers that
// reaches every family, also those no device has a kernel for yet. They call the
// kernel tables' entries, so a kernel added to a table later is checked and timed without
// editing its driver; a null entry is a "no kernel" row, not a failure. A kernel that refuses
// the case (a DType, Shape or Value error: "f32 only", "version 3 does not take f32") gives an
// "unsupported" row with its message, also not a failure; any other error (a CUDA error, an
// IndexError on valid indices), or a result off the CPU's by more than the tolerance, is a
// FAIL and the driver exits 1.
//
// Cases are small (odd shapes, checked in full, untimed) or large (`timed`: checked on samples,
// then timed). --check-only runs the small ones untimed (run.sh --sim); --small runs the small
// ones timed (to try the timing path on sim, where the large ones would take hours).
//
// Timing: a few warm-up launches, then the
// median of repeats, each between two events on the default stream (where the kernels launch),
// each preceded by a write of a buffer larger than the L2 (256 MiB against the H200's 60 MB) so
// that no repeat reads the previous one's data from the cache. The repeat count is set from
// the warm-up so that one case takes about kCaseBudgetMs of device time.
//
// Each row is printed as it completes and, with --json FILE, appended to FILE as one JSON
// object per line: bench/gpu/report.py turns them into the table, bench/gpu/torch_ref.py
// replays each row's `spec` (op, shapes, dtype) with PyTorch.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

#include "core/errors.h"
#include "cpu/fused.h"
#include "cpu/kernels.h"
#include "cpu/thread_pool.h"
#include "cuda/kernels.h"
#include "cuda/runtime.h"

namespace emu::bench {

constexpr double kCaseBudgetMs = 300;  // device time spent timing one case (repeats x duration)
constexpr int kWarmups = 3, kMinRepeats = 5, kMaxRepeats = 100;
constexpr size_t kFlushBytes = size_t(256) << 20;

inline std::string format(const char* fmt, ...) {
  char buf[512];
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, args);
  va_end(args);
  return buf;
}

inline View make_view(void* data, DType dtype, const std::vector<int64_t>& shape, DeviceKind device) {
  View v;
  v.data = data;
  v.dtype = dtype;
  v.ndim = int(shape.size());
  v.device = device;
  int64_t stride = 1;
  for (int d = v.ndim - 1; d >= 0; d--) {
    v.shape[d] = shape[d];
    v.strides[d] = stride;
    stride *= shape[d];
  }
  return v;
}

inline int64_t count(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

// "4096x4096x4096"
inline std::string shape_name(std::initializer_list<int64_t> dims) {
  std::string s;
  for (int64_t d : dims) s += (s.empty() ? "" : "x") + std::to_string(d);
  return s;
}

// f32 values on the host, contiguous: inputs before upload, CPU references, downloaded results.
struct HostTensor {
  std::vector<int64_t> shape;
  std::vector<float> data;

  HostTensor() = default;
  explicit HostTensor(std::vector<int64_t> s) : shape(std::move(s)), data(size_t(count(shape))) {}
  View view() { return make_view(data.data(), DType::F32, shape, DeviceKind::Cpu); }
  int64_t numel() const { return int64_t(data.size()); }

  // Philox uniforms in [low, high) (the CPU kernel; each call with its own seed): never zeros.
  static HostTensor uniform(std::vector<int64_t> shape, uint64_t seed, double low = -1, double high = 1) {
    HostTensor t(std::move(shape));
    cpu::kernels().rand_uniform(t.view(), seed, 0, low, high);
    return t;
  }
  // The values as `dtype` stores them (bf16 and f16: rounded to nearest even), so that the CPU
  // reference sees exactly the numbers the device reads.
  void round_to(DType dtype) {
    if (dtype != DType::BF16 && dtype != DType::F16) return;
    float* p = data.data();
    const bool bf = dtype == DType::BF16;
    cpu::parallel_for(numel(), 1 << 16, [p, bf](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; i++) p[i] = bf ? bf16_to_float(float_to_bf16(p[i])) : f16_to_float(float_to_f16(p[i]));
    });
  }
};

struct Options {
  DeviceKind device = DeviceKind::Cuda;
  bool check_only = false;  // the small cases only, untimed (bench/gpu/run.sh --sim)
  bool small = false;       // the small cases only, timed too (tries the timing path on sim)
  std::string json;         // append the rows to this file
};

class Bench;

// Device memory holding `shape` elements of `dtype`, freed on destruction.
class DeviceTensor {
 public:
  DeviceTensor(DeviceRuntime& rt, DeviceKind device, std::vector<int64_t> shape, DType dtype)
      : rt_(rt), device_(device), shape_(std::move(shape)), dtype_(dtype) {
    bytes_ = size_t(count(shape_)) * size_t(dtype_size(dtype_));
    data_ = rt_.allocate(std::max<size_t>(bytes_, 1), Stream{});
  }
  DeviceTensor(DeviceTensor&& o) noexcept
      : rt_(o.rt_), device_(o.device_), shape_(std::move(o.shape_)), dtype_(o.dtype_), bytes_(o.bytes_), data_(o.data_) {
    o.data_ = nullptr;
  }
  DeviceTensor(const DeviceTensor&) = delete;
  DeviceTensor& operator=(const DeviceTensor&) = delete;
  DeviceTensor& operator=(DeviceTensor&&) = delete;
  ~DeviceTensor() {
    if (data_) rt_.deallocate(data_);
  }

  View view() const { return make_view(data_, dtype_, shape_, device_); }
  const std::vector<int64_t>& shape() const { return shape_; }
  DType dtype() const { return dtype_; }
  size_t bytes() const { return bytes_; }

  // From f32 host values (converted to the dtype by the CPU's copy kernel).
  void upload(HostTensor& h) {
    if (h.numel() != count(shape_)) fail(ErrorKind::Shape, "bench: upload of a host tensor of another size");
    std::vector<char> staged(bytes_);
    cpu::kernels().copy(make_view(staged.data(), dtype_, shape_, DeviceKind::Cpu), h.view());
    rt_.copy_to_device(data_, staged.data(), bytes_, Stream{});
  }
  void upload_i32(const std::vector<int32_t>& values) {
    if (dtype_ != DType::I32 || int64_t(values.size()) != count(shape_)) fail(ErrorKind::Shape, "bench: bad i32 upload");
    rt_.copy_to_device(data_, values.data(), bytes_, Stream{});
  }
  HostTensor download() const {
    std::vector<char> staged(bytes_);
    rt_.copy_to_host(staged.data(), data_, bytes_, Stream{});
    HostTensor h(shape_);
    cpu::kernels().copy(h.view(), make_view(staged.data(), dtype_, shape_, DeviceKind::Cpu));
    return h;
  }
  // Every byte 0xFF: NaN in f32, f64, bf16 and f16, so an element the kernel leaves unwritten fails.
  void poison() { rt_.fill_bytes(data_, 0xFF, bytes_, Stream{}); }

 private:
  DeviceRuntime& rt_;
  DeviceKind device_;
  std::vector<int64_t> shape_;
  DType dtype_;
  size_t bytes_ = 0;
  void* data_ = nullptr;
};

// A case's description: what the row says and what a reference runner needs to replay it.
struct Case {
  std::string kernel = "";  // "matmul v2", "attention fwd", ...
  DType dtype = DType::F32;
  std::string shape = "";  // human-readable
  std::string spec = "";   // JSON object for bench/gpu/torch_ref.py ("" when PyTorch has no counterpart)
  double flops = 0;        // per launch; 0 for memory-bound kernels
  double bytes = 0;        // compulsory bytes per launch: each input read once, each output written once
  bool timed = false;      // a large case: sampled check, then timed
  std::string role = "";   // "bandwidth": the machine's reference that report.py divides by
};

// Relative L2 error allowed against the CPU kernel on the same (rounded) inputs. f32: the
// two sides sum in different orders (about 1e-6 at K = 4096); bf16 and f16: the device rounds its
// output (2^-9, 2^-12 relative) and may round intermediates (P in attention) to its dtype.
inline double default_tolerance(DType dtype) {
  return dtype == DType::BF16 ? 2e-2 : dtype == DType::F16 ? 3e-3 : dtype == DType::F64 ? 1e-10 : 2e-5;
}

struct CheckResult {
  double rel_l2 = 0, max_abs = 0;
  int64_t nonfinite = 0;
};

// ||got - want|| / ||want||, the largest |got - want|, and how many of `got` are NaN or Inf
// (those are left out of the sums). Chunks on the CPU pool, summed in chunk order.
inline CheckResult compare(const float* got, const float* want, int64_t n) {
  constexpr int64_t kChunk = 1 << 18;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> diff2(chunks), ref2(chunks), max_abs(chunks);
  std::vector<int64_t> nonfinite(chunks);
  cpu::parallel_for(chunks, 1, [&](int64_t first, int64_t last) {
    for (int64_t c = first; c < last; c++) {
      for (int64_t i = c * kChunk; i < std::min(n, (c + 1) * kChunk); i++) {
        if (!std::isfinite(got[i])) {
          nonfinite[c]++;
          continue;
        }
        const double d = double(got[i]) - double(want[i]);
        diff2[c] += d * d;
        ref2[c] += double(want[i]) * want[i];
        max_abs[c] = std::max(max_abs[c], std::fabs(d));
      }
    }
  });
  CheckResult r;
  double d2 = 0, w2 = 0;
  for (int64_t c = 0; c < chunks; c++) {
    d2 += diff2[c];
    w2 += ref2[c];
    r.max_abs = std::max(r.max_abs, max_abs[c]);
    r.nonfinite += nonfinite[c];
  }
  r.rel_l2 = w2 > 0 ? std::sqrt(d2 / w2) : std::sqrt(d2);
  return r;
}

// Within one case: the checks against the CPU and the timing.
class Measure {
 public:
  Measure(DeviceRuntime& rt, DeviceKind device, const Case& c, bool time_it) : rt_(rt), device_(device), case_(c), time_it_(time_it) {}

  // Compares n values of `got` (from offset got_first) with `want`; records the worst error.
  void check(const char* what, const HostTensor& got, const HostTensor& want, double tol = -1, int64_t got_first = 0) {
    if (tol < 0) tol = default_tolerance(case_.dtype);
    if (got_first + want.numel() > got.numel()) fail(ErrorKind::Internal, "bench: check beyond the result");
    const CheckResult r = compare(got.data.data() + got_first, want.data.data(), want.numel());
    const bool ok = r.nonfinite == 0 && r.rel_l2 <= tol;
    if (!ok) {
      failed_ = true;
      notes_ += format("%s%s: rel err %.3g (tol %.3g), max abs %.3g, %lld non-finite", notes_.empty() ? "" : "; ", what,
                       r.rel_l2, tol, r.max_abs, (long long)r.nonfinite);
    }
    const double ratio = tol > 0 ? r.rel_l2 / tol : r.rel_l2 > 0 ? HUGE_VAL : 0;
    if (ratio >= worst_ratio_) {
      worst_ratio_ = ratio;
      worst_err_ = r.rel_l2;
      worst_tol_ = tol;
    }
  }

  // Times `launch` (see the header comment); a no-op for untimed cases and with --check-only.
  void time(const std::function<void()>& launch) {
    if (!time_it_ || failed_) return;
    DeviceTensor flush(rt_, device_, {int64_t(kFlushBytes)}, DType::Bool);
    Event start = rt_.create_event(), stop = rt_.create_event();
    auto once = [&](int r) {
      rt_.fill_bytes(flush.view().data, r & 0xFF, kFlushBytes, Stream{});
      rt_.record(start, Stream{});
      launch();
      rt_.record(stop, Stream{});
      rt_.synchronize(stop);
      return double(rt_.elapsed_ms(start, stop));
    };
    double warm = 0;
    for (int r = 0; r < kWarmups; r++) warm = once(r);
    const int repeats = std::clamp(int(kCaseBudgetMs / std::max(warm, 1e-3)), kMinRepeats, kMaxRepeats);
    std::vector<double> ms;
    for (int r = 0; r < repeats; r++) ms.push_back(once(r));
    std::sort(ms.begin(), ms.end());
    median_ms_ = ms[ms.size() / 2];
    min_ms_ = ms.front();
    repeats_ = repeats;
    rt_.destroy_event(start);
    rt_.destroy_event(stop);
  }

  bool failed() const { return failed_; }
  const std::string& notes() const { return notes_; }
  double worst_err() const { return worst_err_; }
  double worst_tol() const { return worst_tol_; }
  double median_ms() const { return median_ms_; }
  double min_ms() const { return min_ms_; }
  int repeats() const { return repeats_; }

 private:
  DeviceRuntime& rt_;
  DeviceKind device_;
  const Case& case_;
  bool time_it_;
  bool failed_ = false;
  std::string notes_;
  double worst_ratio_ = -1, worst_err_ = 0, worst_tol_ = 0;
  double median_ms_ = 0, min_ms_ = 0;
  int repeats_ = 0;
};

inline std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) out += format("\\u%04x", c);
    else out += c;
  }
  return out + "\"";
}

// A number for JSON: NaN and Inf (which JSON lacks) as null.
inline std::string json_number(double x) { return std::isfinite(x) ? format("%.6g", x) : "null"; }

class Bench {
 public:
  // Usage: gpu_FAMILY [--device cuda|sim|cpu] [--check-only | --small] [--json FILE]
  Bench(const char* family, int argc, char** argv) : family_(family) {
    for (int i = 1; i < argc; i++) {
      const std::string a = argv[i];
      if (a == "--device" && i + 1 < argc) {
        const std::string d = argv[++i];
        if (d == "cuda") opts_.device = DeviceKind::Cuda;
        else if (d == "sim") opts_.device = DeviceKind::Sim;
        else if (d == "cpu") opts_.device = DeviceKind::Cpu;
        else usage(argv[0], "unknown device " + d);
      } else if (a == "--check-only") {
        opts_.check_only = true;
      } else if (a == "--small") {
        opts_.small = true;
      } else if (a == "--json" && i + 1 < argc) {
        opts_.json = argv[++i];
      } else {
        usage(argv[0], "unknown argument " + a);
      }
    }
    if (opts_.device == DeviceKind::Cuda) {
      rt_ = &emu::cuda::runtime();  // throws, saying why, without a GPU
      table_ = &emu::cuda::kernel_table();
      fused_ = &emu::cuda::fused_table();
      device_name_ = emu::cuda::device_name(0);
    } else if (opts_.device == DeviceKind::Sim) {
      rt_ = &emu::sim::runtime();
      table_ = &emu::sim::kernel_table();
      fused_ = &emu::sim::fused_table();
      device_name_ = "sim (SIMT emulator on the CPU)";
    } else {  // the CPU's own tables on host memory (the sim runtime's): the harness against itself
      rt_ = &emu::sim::runtime();
      table_ = &cpu::kernels();
      fused_ = &cpu::fused_kernels();
      device_name_ = "cpu (the CPU kernels against themselves)";
    }
    if (!opts_.json.empty()) {
      json_ = std::fopen(opts_.json.c_str(), "a");
      if (!json_) usage(argv[0], "cannot open " + opts_.json);
    }
    std::printf("== %s on %s%s\n", family_, device_name_.c_str(),
                opts_.check_only ? " (small cases, check only)" : opts_.small ? " (small cases)" : "");
  }
  ~Bench() {
    if (json_) std::fclose(json_);
  }

  DeviceRuntime& rt() { return *rt_; }
  DeviceKind device() const { return opts_.device; }
  const cpu::KernelTable& table() const { return *table_; }
  const cpu::FusedKernels& fused() const { return *fused_; }
  // Whether a case of this size runs at all (--check-only runs the small ones only).
  bool wants(bool timed) const { return !(timed && (opts_.check_only || opts_.small)); }

  DeviceTensor tensor(std::vector<int64_t> shape, DType dtype) { return DeviceTensor(*rt_, opts_.device, std::move(shape), dtype); }
  // Rounds `h` to the dtype (so the CPU reference sees the device's numbers) and uploads it.
  DeviceTensor upload(HostTensor& h, DType dtype) {
    h.round_to(dtype);
    DeviceTensor t = tensor(h.shape, dtype);
    t.upload(h);
    return t;
  }

  // One case: `present` says whether the device has the kernel; `body` sets up, runs the kernel,
  // checks it through the Measure and times it.
  void run(const Case& c, bool present, const std::function<void(Measure&)>& body) {
    if (!wants(c.timed)) return;
    if (!present) {
      row(c, "no kernel", nullptr, "");
      return;
    }
    Measure m(*rt_, opts_.device, c, !opts_.check_only && (c.timed || opts_.small));
    try {
      body(m);
      rt_->synchronize_device();
    } catch (const Error& e) {
      if (e.kind == ErrorKind::DType || e.kind == ErrorKind::Shape || e.kind == ErrorKind::Value) {
        row(c, "unsupported", nullptr, e.what());
        return;
      }
      failures_++;
      row(c, "FAIL", nullptr, e.what());
      return;
    } catch (const std::exception& e) {
      failures_++;
      row(c, "FAIL", nullptr, e.what());
      return;
    }
    if (m.failed()) failures_++;
    row(c, m.failed() ? "FAIL" : "ok", &m, m.notes());
  }

  // Prints the summary line and returns the exit status: 1 if any check failed.
  int finish() {
    std::printf("== %s: %d cases, %d failed\n", family_, rows_, failures_);
    std::fflush(stdout);
    return failures_ ? 1 : 0;
  }

 private:
  [[noreturn]] static void usage(const char* prog, const std::string& why) {
    std::fprintf(stderr, "%s: %s\nusage: %s [--device cuda|sim|cpu] [--check-only | --small] [--json FILE]\n", prog, why.c_str(),
                 prog);
    std::exit(2);
  }

  void row(const Case& c, const char* status, const Measure* m, const std::string& notes) {
    rows_++;
    const double ms = m ? m->median_ms() : 0;
    std::string rate;
    if (ms > 0 && c.flops > 0) rate = format("%8.2f TFLOP/s", c.flops / ms * 1e-9);
    else if (ms > 0 && c.bytes > 0) rate = format("%8.3f TB/s", c.bytes / ms * 1e-9);
    std::printf("%-28s %-5s %-22s %-11s", c.kernel.c_str(), dtype_name(c.dtype), c.shape.c_str(), status);
    if (m && m->worst_tol() > 0) std::printf(" err %.2e/%.0e", m->worst_err(), m->worst_tol());
    if (ms > 0) std::printf("  %9.4f ms %s", ms, rate.c_str());
    if (!notes.empty()) std::printf("  %s", notes.c_str());
    std::printf("\n");
    std::fflush(stdout);
    if (!json_) return;
    std::fprintf(json_,
                 "{\"family\":%s,\"kernel\":%s,\"dtype\":\"%s\",\"shape\":%s,\"device\":%s,\"status\":\"%s\",\"role\":\"%s\","
                 "\"err\":%s,\"tol\":%s,\"ms\":%s,\"min_ms\":%s,\"repeats\":%d,\"flops\":%s,\"bytes\":%s,"
                 "\"timed\":%s,\"notes\":%s,\"spec\":%s}\n",
                 json_string(family_).c_str(), json_string(c.kernel).c_str(), dtype_name(c.dtype), json_string(c.shape).c_str(),
                 json_string(device_name_).c_str(), status, c.role.c_str(), json_number(m ? m->worst_err() : 0).c_str(),
                 json_number(m ? m->worst_tol() : 0).c_str(), json_number(ms).c_str(), json_number(m ? m->min_ms() : 0).c_str(),
                 m ? m->repeats() : 0, json_number(c.flops).c_str(), json_number(c.bytes).c_str(), c.timed ? "true" : "false",
                 json_string(notes).c_str(), c.spec.empty() ? "null" : c.spec.c_str());
    std::fflush(json_);
  }

  const char* family_;
  Options opts_;
  DeviceRuntime* rt_ = nullptr;
  const cpu::KernelTable* table_ = nullptr;
  const cpu::FusedKernels* fused_ = nullptr;
  std::string device_name_;
  std::FILE* json_ = nullptr;
  int rows_ = 0, failures_ = 0;
};

// An operand of a TableCall: random uniforms in [low, high) (i32 ones: their floor). Outputs
// are poisoned before the device call, unless `in_place` (read and written, as AdamW's p, m
// and v): those start from the same random values on both sides.
struct Operand {
  std::vector<int64_t> shape;
  DType dtype;
  double low = -1, high = 1;
  bool in_place = false;
};

// One kernel-table entry called the same way on both sides: `call(table, outputs, inputs)` with
// the CPU's table (cpu::kernels() or cpu::fused_kernels()) on host views, and with the device's
// table on device views. Float operands are f32 on the CPU side whatever the case's dtype (the
// CPU's fused kernels are f32/f64 only); i32 ones are i32 on both.
template <class Table>
struct TableCall {
  std::string kernel;
  DType dtype;
  std::string shape;  // "" : the input shapes
  std::string spec;
  double flops = 0;
  std::vector<Operand> inputs, outputs;
  bool present;
  std::function<void(const Table&, const std::vector<View>& out, const std::vector<View>& in)> call;
};

// Runs a TableCall: the CPU's result, then the device's (checked), then the device's timing.
// Bytes are each input read once and each output written once (in-place ones read too).
template <class Table>
void run_call(Bench& bench, const TableCall<Table>& op, const Table& cpu_table, const Table& dev_table, bool timed) {
  double bytes = 0;
  std::string shape = op.shape;
  for (const Operand& o : op.inputs) {
    bytes += double(count(o.shape)) * dtype_size(o.dtype);
    if (op.shape.empty()) {
      std::string s;
      for (int64_t d : o.shape) s += (s.empty() ? "" : "x") + std::to_string(d);
      shape += (shape.empty() ? "" : ",") + s;
    }
  }
  for (const Operand& o : op.outputs) bytes += double(count(o.shape)) * dtype_size(o.dtype) * (o.in_place ? 2 : 1);
  const Case c{op.kernel, op.dtype, shape, op.spec, op.flops, op.flops > 0 ? 0 : bytes, timed};
  bench.run(c, op.present, [&](Measure& m) {
    // Host operands (f32, or i32 staged beside them) and their device copies.
    std::vector<HostTensor> host;
    std::vector<std::vector<int32_t>> host_i32;
    std::vector<DeviceTensor> dev;
    auto make = [&](const Operand& o, uint64_t seed, bool random) {
      host.push_back(random ? HostTensor::uniform(o.shape, seed, o.low, o.high) : HostTensor(o.shape));
      HostTensor& h = host.back();
      if (o.dtype == DType::I32) {
        for (float& x : h.data) x = std::floor(x);
        host_i32.emplace_back(h.data.begin(), h.data.end());
      }
      dev.push_back(random ? bench.upload(h, o.dtype) : bench.tensor(o.shape, o.dtype));
    };
    const size_t n_in = op.inputs.size();
    for (size_t i = 0; i < n_in; i++) make(op.inputs[i], 100 + i, true);
    for (size_t i = 0; i < op.outputs.size(); i++) make(op.outputs[i], 200 + i, op.outputs[i].in_place);
    std::vector<View> host_in, host_out, dev_in, dev_out;
    for (size_t i = 0, k = 0; i < host.size(); i++) {
      const Operand& o = i < n_in ? op.inputs[i] : op.outputs[i - n_in];
      const View hv = o.dtype == DType::I32 ? make_view(host_i32[k++].data(), DType::I32, o.shape, DeviceKind::Cpu) : host[i].view();
      (i < n_in ? host_in : host_out).push_back(hv);
      (i < n_in ? dev_in : dev_out).push_back(dev[i].view());
    }
    for (size_t i = 0; i < op.outputs.size(); i++)
      if (!op.outputs[i].in_place) dev[n_in + i].poison();
    op.call(cpu_table, host_out, host_in);
    op.call(dev_table, dev_out, dev_in);
    for (size_t i = 0; i < op.outputs.size(); i++) {
      HostTensor& want = host[n_in + i];
      want.round_to(op.outputs[i].dtype);
      m.check(format("out%zu", i).c_str(), dev[n_in + i].download(), want);
    }
    m.time([&] { op.call(dev_table, dev_out, dev_in); });
  });
}

// The dtype a fused kernel wants its per-row statistics in (lse, rstd, mean, loss) for inputs of
// `dtype`: f32 for bf16 and f16 inputs if `call_with_f32_stats` (a tiny call of the kernel with f32
// statistics) is accepted, as FlashAttention and apex keep them; else the inputs' own dtype.
inline DType stats_dtype(DType dtype, bool present, const std::function<void()>& call_with_f32_stats) {
  if ((dtype != DType::BF16 && dtype != DType::F16) || !present) return dtype;
  try {
    call_with_f32_stats();
  } catch (const Error& e) {
    if (e.kind == ErrorKind::DType) return dtype;
  }
  return DType::F32;
}

// A driver's main: runs `body` and turns an error outside any case (no GPU, say) into a clear
// message and exit status 2.
inline int main_of(const char* family, int argc, char** argv, const std::function<void(Bench&)>& body) {
  try {
    Bench bench(family, argc, argv);
    body(bench);
    return bench.finish();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", family, e.what());
    return 2;
  }
}

}  // namespace emu::bench
