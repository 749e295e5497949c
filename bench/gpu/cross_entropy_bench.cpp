// cross_entropy_bench.cpp: the device's fused softmax cross-entropy (FusedKernels::cross_entropy
// and cross_entropy_backward) over logits [N, V] against i32 targets, with an ignore index
// (class 3 here, so rows of that target give 0), checked against the CPU's and timed at a
// LLaMA vocabulary (V = 32000). The backward gets lse as an input: random values near the true
// log-sum-exp of uniform logits (log V + 0.16), identical on both sides. For bf16 logits the
// per-row loss and lse are f32 where the kernel takes that, else bf16 (bench.h's stats_dtype
// asks it). Bytes: the logits read once (the backward also writes dlogits once) plus the [N] vectors.
#include <cmath>

#include "bench.h"

using namespace emu;
using namespace emu::bench;

namespace {

using Call = TableCall<cpu::FusedKernels>;
using Views = std::vector<View>;
constexpr int64_t kIgnore = 3;

void run_ce(Bench& bench, int64_t N, int64_t V, DType dt, double smoothing, bool timed) {
  if (!bench.wants(timed)) return;
  const cpu::FusedKernels& f = bench.fused();
  const DType rt = stats_dtype(dt, f.cross_entropy != nullptr, [&] {
    DeviceTensor logits = bench.tensor({2, 32}, dt), targets = bench.tensor({2}, DType::I32), loss = bench.tensor({2}, DType::F32),
                 lse = bench.tensor({2}, DType::F32);
    HostTensor h = HostTensor::uniform({2, 32}, 5);
    logits.upload(h);
    targets.upload_i32({1, 2});
    f.cross_entropy(loss.view(), lse.view(), logits.view(), targets.view(), kIgnore, 0);
  });
  const std::vector<int64_t> lg{N, V}, n{N};
  const double lse_low = std::log(double(V)) + 0.06;
  auto spec = [&](const char* pass) {
    return format("{\"op\":\"cross_entropy\",\"pass\":\"%s\",\"N\":%lld,\"V\":%lld,\"ignore\":%lld,\"smoothing\":%g,\"dtype\":\"%s\"}",
                  pass, (long long)N, (long long)V, (long long)kIgnore, smoothing, dtype_name(dt));
  };
  const std::string shape = format("%lldx%lld", (long long)N, (long long)V) + (smoothing ? format(" ls%g", smoothing) : "");
  const Operand targets{n, DType::I32, 0, double(V)};
  const std::vector<Call> calls = {
      {"cross-entropy fwd", dt, shape, spec("fwd"), 0, {{lg, dt}, targets}, {{n, rt}, {n, rt}}, f.cross_entropy != nullptr,
       [=](const cpu::FusedKernels& k, const Views& o, const Views& i) { k.cross_entropy(o[0], o[1], i[0], i[1], kIgnore, smoothing); }},
      {"cross-entropy bwd", dt, shape, spec("bwd"), 0, {{n, rt}, {lg, dt}, {n, rt, lse_low, lse_low + 0.2}, targets}, {{lg, dt}},
       f.cross_entropy_backward != nullptr,
       [=](const cpu::FusedKernels& k, const Views& o, const Views& i) {
         k.cross_entropy_backward(o[0], i[0], i[1], i[2], i[3], kIgnore, smoothing);
       }},
  };
  for (const Call& c : calls) run_call(bench, c, cpu::fused_kernels(), f, timed);
}

}  // namespace

int main(int argc, char** argv) {
  return main_of("cross_entropy", argc, argv, [](Bench& bench) {
    for (DType dt : {DType::F32, DType::BF16}) {
      run_ce(bench, 37, 101, dt, 0, false);
      run_ce(bench, 5, 1031, dt, 0.1, false);
    }
    for (DType dt : {DType::BF16, DType::F32}) run_ce(bench, 4096, 32000, dt, 0, true);
  });
}
