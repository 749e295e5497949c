// attention_bench.cpp: the device's fused attention (FusedKernels::attention and
// attention_backward), checked against the CPU's fused attention and timed, FlashAttention
// style: q [B,H,Lq,D], k and v [B,H,Lk,D], no bias or mask, scale 1/sqrt(D), causal or not.
//
// Large cases are checked on two sampled heads (the first and the last), each computed by the
// CPU kernel on that head's slice; small odd cases (Lq != Lk too) on every head. The backward
// takes out and lse from the device's forward (from the CPU's when the device has none), so
// both sides differentiate the same numbers. The log-sum-exp is kept in f32 for bf16 and f16 inputs
// where the kernel takes that (bench.h's stats_dtype asks it), else in the inputs' dtype.
// FLOPs: forward 4 B H Lq Lk D (two matrix products), halved when causal; the backward 2.5x
// the forward (five products), FlashAttention's convention.
#include <cmath>

#include "bench.h"

using namespace emu;
using namespace emu::bench;

namespace {

struct Shape {
  int64_t B, H, Lq, Lk, D;
  bool causal, timed;
};

// The [1,1,L,D] view of head `h` (of the flattened B*H) of a host tensor [B,H,L,D].
View head(HostTensor& t, int64_t h) {
  const int64_t L = t.shape[2], D = t.shape.size() > 3 ? t.shape[3] : 1;
  std::vector<int64_t> shape = {1, 1, L};
  if (t.shape.size() > 3) shape.push_back(D);
  return make_view(t.data.data() + h * L * D, DType::F32, shape, DeviceKind::Cpu);
}

void run_shape(Bench& bench, const Shape& s, DType dt) {
  if (!bench.wants(s.timed)) return;
  const cpu::FusedKernels& f = bench.fused();
  const cpu::FusedKernels& ref = cpu::fused_kernels();
  const double scale = 1 / std::sqrt(double(s.D));
  const DType sdt = stats_dtype(dt, f.attention != nullptr, [&] {
    DeviceTensor x = bench.tensor({1, 1, 16, 32}, dt), o = bench.tensor({1, 1, 16, 32}, dt), l = bench.tensor({1, 1, 16}, DType::F32);
    HostTensor h = HostTensor::uniform({1, 1, 16, 32}, 5);
    x.upload(h);
    f.attention(o.view(), l.view(), x.view(), x.view(), x.view(), nullptr, nullptr, 1.0, false);
  });
  const std::vector<int64_t> qs{s.B, s.H, s.Lq, s.D}, ks{s.B, s.H, s.Lk, s.D}, ls{s.B, s.H, s.Lq};
  std::vector<int64_t> heads;
  for (int64_t h = 0; h < s.B * s.H; h++)
    if (!s.timed || h == 0 || h == s.B * s.H - 1) heads.push_back(h);

  HostTensor q = HostTensor::uniform(qs, 21), k = HostTensor::uniform(ks, 22), v = HostTensor::uniform(ks, 23),
             dout = HostTensor::uniform(qs, 24);
  DeviceTensor dq_ = bench.upload(q, dt), dk_ = bench.upload(k, dt), dv_ = bench.upload(v, dt), ddout = bench.upload(dout, dt);
  DeviceTensor out = bench.tensor(qs, dt), lse = bench.tensor(ls, sdt);
  const View qv = dq_.view(), kv = dk_.view(), vv = dv_.view();

  const double fwd_flops = 4.0 * s.B * s.H * s.Lq * s.Lk * s.D * (s.causal && s.Lq == s.Lk ? 0.5 : 1.0);
  const std::string shape = format("%lldx%lldx%lldx%lld%s", (long long)s.B, (long long)s.H, (long long)s.Lq, (long long)s.D,
                                   s.Lq != s.Lk ? format(" Lk%lld", (long long)s.Lk).c_str() : "") +
                            (s.causal ? " causal" : "");
  auto spec = [&](const char* pass) {
    return format("{\"op\":\"attention\",\"pass\":\"%s\",\"B\":%lld,\"H\":%lld,\"Lq\":%lld,\"Lk\":%lld,\"D\":%lld,\"causal\":%s,"
                  "\"dtype\":\"%s\"}",
                  pass, (long long)s.B, (long long)s.H, (long long)s.Lq, (long long)s.Lk, (long long)s.D, s.causal ? "true" : "false",
                  dtype_name(dt));
  };

  // Forward: out and lse of the sampled heads against the CPU's.
  bool have_forward = false;
  bench.run(Case{"attention fwd", dt, shape, spec("fwd"), fwd_flops, 0, s.timed}, f.attention != nullptr, [&](Measure& m) {
    out.poison();
    lse.poison();
    f.attention(out.view(), lse.view(), qv, kv, vv, nullptr, nullptr, scale, s.causal);
    HostTensor got_out = out.download(), got_lse = lse.download();
    HostTensor want_out({s.Lq, s.D}), want_lse({s.Lq});
    for (int64_t h : heads) {
      ref.attention(make_view(want_out.data.data(), DType::F32, {1, 1, s.Lq, s.D}, DeviceKind::Cpu),
                    make_view(want_lse.data.data(), DType::F32, {1, 1, s.Lq}, DeviceKind::Cpu), head(q, h), head(k, h), head(v, h),
                    nullptr, nullptr, scale, s.causal);
      want_out.round_to(dt);
      want_lse.round_to(sdt);
      m.check("out", got_out, want_out, -1, h * s.Lq * s.D);
      m.check("lse", got_lse, want_lse, -1, h * s.Lq);
    }
    have_forward = !m.failed();
    m.time([&] { f.attention(out.view(), lse.view(), qv, kv, vv, nullptr, nullptr, scale, s.causal); });
  });

  // Backward: dq, dk, dv of the sampled heads, from the same out and lse on both sides.
  const bool present = f.attention_backward != nullptr;
  bench.run(Case{"attention bwd", dt, shape, spec("bwd"), 2.5 * fwd_flops, 0, s.timed}, present, [&](Measure& m) {
    HostTensor o(qs), l(ls);
    if (have_forward) {
      o = out.download();
      l = lse.download();
    } else {  // the CPU's forward over every head, uploaded for the device
      ref.attention(o.view(), l.view(), q.view(), k.view(), v.view(), nullptr, nullptr, scale, s.causal);
      out.upload(o);
      lse.upload(l);
      o = out.download();  // the values as stored in the device's dtype
      l = lse.download();
    }
    DeviceTensor gq = bench.tensor(qs, dt), gk = bench.tensor(ks, dt), gv = bench.tensor(ks, dt);
    for (DeviceTensor* g : {&gq, &gk, &gv}) g->poison();
    auto backward = [&] {
      f.attention_backward(gq.view(), gk.view(), gv.view(), nullptr, ddout.view(), out.view(), lse.view(), qv, kv, vv, nullptr, nullptr,
                           scale, s.causal);
    };
    backward();
    HostTensor got_q = gq.download(), got_k = gk.download(), got_v = gv.download();
    HostTensor wq({s.Lq, s.D}), wk({s.Lk, s.D}), wv({s.Lk, s.D});
    for (int64_t h : heads) {
      ref.attention_backward(make_view(wq.data.data(), DType::F32, {1, 1, s.Lq, s.D}, DeviceKind::Cpu),
                             make_view(wk.data.data(), DType::F32, {1, 1, s.Lk, s.D}, DeviceKind::Cpu),
                             make_view(wv.data.data(), DType::F32, {1, 1, s.Lk, s.D}, DeviceKind::Cpu), nullptr, head(dout, h), head(o, h),
                             head(l, h), head(q, h), head(k, h), head(v, h), nullptr, nullptr, scale, s.causal);
      for (HostTensor* w : {&wq, &wk, &wv}) w->round_to(dt);
      m.check("dq", got_q, wq, -1, h * s.Lq * s.D);
      m.check("dk", got_k, wk, -1, h * s.Lk * s.D);
      m.check("dv", got_v, wv, -1, h * s.Lk * s.D);
    }
    m.time(backward);
  });
}

}  // namespace

int main(int argc, char** argv) {
  return main_of("attention", argc, argv, [](Bench& bench) {
    for (DType dt : {DType::F32, DType::BF16, DType::F16}) {
      run_shape(bench, {1, 2, 37, 37, 32, false, false}, dt);
      run_shape(bench, {1, 2, 37, 37, 32, true, false}, dt);
      run_shape(bench, {2, 1, 29, 45, 88, false, false}, dt);  // cross-attention, Emu's vision head dim
      run_shape(bench, {1, 1, 33, 33, 128, true, false}, dt);
    }
    run_shape(bench, {4, 16, 4096, 4096, 128, false, true}, DType::BF16);  // the target
    run_shape(bench, {4, 16, 4096, 4096, 128, false, true}, DType::F16);
    run_shape(bench, {4, 16, 4096, 4096, 128, true, true}, DType::BF16);
    run_shape(bench, {4, 16, 4096, 4096, 88, false, true}, DType::BF16);
    run_shape(bench, {32, 16, 257, 257, 88, false, true}, DType::BF16);  // Emu's EVA-CLIP ViT: 16x16 patches + class token
  });
}
