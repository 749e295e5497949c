// norm_bench.cpp: the device's fused norms (FusedKernels::norm_forward and norm_backward):
// RMSNorm (no mean, weight, no bias) and LayerNorm (mean, weight and bias), forward and
// backward, over the rows of x [N, D], checked against the CPU's fused norms and timed at LLM
// widths (hidden 4096 and 8192). The backward gets the saved statistics (rstd, mean) as inputs:
// random values in a plausible range, identical on both sides, since the kernels compute the
// same function of them whatever they are. For bf16 inputs the statistics are f32 where the
// kernel takes that, else bf16 (bench.h's stats_dtype asks it). Bytes: x and dy read once, y, dx
// written once, plus the [D] and [N] vectors; the weight gradient's reduction across rows is
// the kernel's business.
#include "bench.h"

using namespace emu;
using namespace emu::bench;

namespace {

using Call = TableCall<cpu::FusedKernels>;
using Views = std::vector<View>;

// version 0: the device's default (norm.cu's v2); 1: norm.cu's v1 (a thread per row), forced
// around each device call and reset after it (the CPU reference has one version).
void run_norm(Bench& bench, int64_t N, int64_t D, DType dt, bool layer_norm, bool timed, int version = 0) {
  if (!bench.wants(timed)) return;
  const cpu::FusedKernels& f = bench.fused();
  const DType st = stats_dtype(dt, f.norm_forward != nullptr, [&] {
    DeviceTensor x = bench.tensor({2, 32}, dt), y = bench.tensor({2, 32}, dt), rstd = bench.tensor({2}, DType::F32);
    HostTensor h = HostTensor::uniform({2, 32}, 5);
    x.upload(h);
    f.norm_forward(y.view(), nullptr, rstd.view(), x.view(), nullptr, nullptr, 1e-5);
  });
  const std::vector<int64_t> x{N, D}, w{D}, n{N};
  const char* name = layer_norm ? "layernorm" : "rmsnorm";
  auto spec = [&](const char* pass) {
    return format("{\"op\":\"%s\",\"pass\":\"%s\",\"N\":%lld,\"D\":%lld,\"dtype\":\"%s\"}", name, pass, (long long)N, (long long)D,
                  dtype_name(dt));
  };
  const std::string shape = format("%lldx%lld", (long long)N, (long long)D);
  const std::string v = version ? format(" v%d", version) : "";
  // The table call under `version`: set on the device's table, reset to the default after.
  auto versioned = [version](void (*call)(const cpu::FusedKernels&, const Views&, const Views&)) {
    return [version, call](const cpu::FusedKernels& k, const Views& o, const Views& i) {
      if (k.norm_version) k.norm_version(version);
      call(k, o, i);
      if (k.norm_version) k.norm_version(0);
    };
  };
  const bool present = f.norm_forward != nullptr && (version == 0 || f.norm_version != nullptr);
  std::vector<Call> calls;
  if (layer_norm) {
    calls = {
        {"layernorm fwd" + v, dt, shape, spec("fwd"), 0, {{x, dt}, {w, dt}, {w, dt}}, {{x, dt}, {n, st}, {n, st}}, present,
         versioned([](const cpu::FusedKernels& k, const Views& o, const Views& i) { k.norm_forward(o[0], &o[1], o[2], i[0], &i[1], &i[2], 1e-5); })},
        {"layernorm bwd" + v, dt, shape, spec("bwd"), 0, {{x, dt}, {x, dt}, {w, dt}, {n, st, -0.1, 0.1}, {n, st, 0.5, 2}},
         {{x, dt}, {w, dt}, {w, dt}}, present && f.norm_backward != nullptr,
         versioned([](const cpu::FusedKernels& k, const Views& o, const Views& i) {
           k.norm_backward(o[0], &o[1], &o[2], i[0], i[1], &i[2], &i[3], i[4]);
         })},
    };
  } else {
    calls = {
        {"rmsnorm fwd" + v, dt, shape, spec("fwd"), 0, {{x, dt}, {w, dt}}, {{x, dt}, {n, st}}, present,
         versioned([](const cpu::FusedKernels& k, const Views& o, const Views& i) { k.norm_forward(o[0], nullptr, o[1], i[0], &i[1], nullptr, 1e-5); })},
        {"rmsnorm bwd" + v, dt, shape, spec("bwd"), 0, {{x, dt}, {x, dt}, {w, dt}, {n, st, 0.5, 2}}, {{x, dt}, {w, dt}},
         present && f.norm_backward != nullptr,
         versioned([](const cpu::FusedKernels& k, const Views& o, const Views& i) {
           k.norm_backward(o[0], &o[1], nullptr, i[0], i[1], &i[2], nullptr, i[3]);
         })},
    };
  }
  for (const Call& c : calls) run_call(bench, c, cpu::fused_kernels(), f, timed);
}

// RMSNorm forward of bf16 x [N, D] two ways: the kernel reading bf16 directly (what norm.cu does
// since it took 16-bit types), and the chain it replaced, which is still the CPU's path: cast x
// and w to f32, the f32 kernel, cast y back (4 launches, 20 bytes per element instead of 4).
// Both are checked against the CPU kernel in f32 on the same rounded inputs.
void run_norm_casts(Bench& bench, int64_t N, int64_t D, bool timed) {
  if (!bench.wants(timed)) return;
  const cpu::FusedKernels& f = bench.fused();
  const cpu::KernelTable& t = bench.table();
  HostTensor hx = HostTensor::uniform({N, D}, 31), hw = HostTensor::uniform({D}, 32, 0.5, 1.5);
  DeviceTensor x = bench.upload(hx, DType::BF16), w = bench.upload(hw, DType::BF16), y = bench.tensor({N, D}, DType::BF16);
  DeviceTensor xf = bench.tensor({N, D}, DType::F32), wf = bench.tensor({D}, DType::F32), yf = bench.tensor({N, D}, DType::F32);
  DeviceTensor rstd = bench.tensor({N}, DType::F32);
  HostTensor want({N, D}), want_rstd({N});
  const View hwv = hw.view();
  cpu::fused_kernels().norm_forward(want.view(), nullptr, want_rstd.view(), hx.view(), &hwv, nullptr, 1e-5);
  want.round_to(DType::BF16);
  const View xv = x.view(), wv = w.view(), yv = y.view(), xfv = xf.view(), wfv = wf.view(), yfv = yf.view(), rv = rstd.view();
  const std::string shape = format("%lldx%lld", (long long)N, (long long)D);
  Case c{"", DType::BF16, shape,
         format("{\"op\":\"rmsnorm\",\"pass\":\"fwd\",\"N\":%lld,\"D\":%lld,\"dtype\":\"bf16\"}", (long long)N, (long long)D),
         0, 2.0 * (N * D + D) + 4.0 * N, timed};
  c.kernel = "rmsnorm fwd (16-bit direct)";
  auto direct = [&] { f.norm_forward(yv, nullptr, rv, xv, &wv, nullptr, 1e-5); };
  bench.run(c, f.norm_forward != nullptr, [&](Measure& m) {
    y.poison();
    direct();
    m.check("y", y.download(), want);
    m.time(direct);
  });
  c.kernel = "rmsnorm fwd via f32 casts";
  auto chain = [&] {
    t.copy(xfv, xv);
    t.copy(wfv, wv);
    f.norm_forward(yfv, nullptr, rv, xfv, &wfv, nullptr, 1e-5);
    t.copy(yv, yfv);
  };
  bench.run(c, f.norm_forward != nullptr && t.copy != nullptr, [&](Measure& m) {
    y.poison();
    chain();
    m.check("y", y.download(), want);
    m.time(chain);
  });
}

}  // namespace

int main(int argc, char** argv) {
  return main_of("norm", argc, argv, [](Bench& bench) {
    for (DType dt : {DType::F32, DType::BF16})
      for (bool ln : {false, true})
        for (int version : {0, 1}) {
          run_norm(bench, 37, 53, dt, ln, false, version);
          run_norm(bench, 3, 1031, dt, ln, false, version);
        }
    run_norm(bench, 16384, 4096, DType::BF16, false, true, 1);  // v1, a thread per row: the baseline v2 improves on
    for (DType dt : {DType::BF16, DType::F32}) run_norm(bench, 16384, 4096, dt, false, true);  // LLaMA-7B hidden
    run_norm(bench, 4096, 8192, DType::BF16, false, true);
    run_norm(bench, 16384, 4096, DType::BF16, true, true);
    run_norm_casts(bench, 37, 53, false);
    run_norm_casts(bench, 16384, 4096, true);
  });
}
