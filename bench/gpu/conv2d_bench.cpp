// conv2d_bench.cpp: the device's convolution kernels, forward (KernelTable::conv2d, with bias),
// backward-data (conv2d_backward_input) and backward-weight (conv2d_backward_weight, with the
// bias gradient), each checked against the CPU's kernel and timed on Stable Diffusion UNet
// shapes (batch 2 at 512x512: latents 64x64 with 320 channels, 32x32 with 640, 16x16 with
// 1280; the 4-channel input conv, a stride-2 downsample and a 1x1 skip conv), plus small odd
// ones. FLOPs per pass: 2 N O OH OW C KH KW (the three passes do the same multiply-adds).
#include "bench.h"

using namespace emu;
using namespace emu::bench;

namespace {

using Call = TableCall<cpu::KernelTable>;
using Views = std::vector<View>;

struct Conv {
  int64_t N, C, H, W, O, k, stride, pad;
  bool timed;
  int64_t OH() const { return (H + 2 * pad - k) / stride + 1; }
  int64_t OW() const { return (W + 2 * pad - k) / stride + 1; }
};

void run_conv(Bench& bench, const Conv& s, DType dt) {
  if (!bench.wants(s.timed)) return;
  const cpu::KernelTable& t = bench.table();
  const int64_t st[2] = {s.stride, s.stride}, pd[2] = {s.pad, s.pad}, dil[2] = {1, 1};
  const std::vector<int64_t> in{s.N, s.C, s.H, s.W}, w{s.O, s.C, s.k, s.k}, out{s.N, s.O, s.OH(), s.OW()};
  const double flops = 2.0 * s.N * s.O * s.OH() * s.OW() * s.C * s.k * s.k;
  const std::string shape = format("%lldx%lldx%lldx%lld o%lld k%lld s%lld", (long long)s.N, (long long)s.C, (long long)s.H,
                                   (long long)s.W, (long long)s.O, (long long)s.k, (long long)s.stride);
  auto spec = [&](const char* pass) {
    return format("{\"op\":\"conv2d\",\"pass\":\"%s\",\"N\":%lld,\"C\":%lld,\"H\":%lld,\"W\":%lld,\"O\":%lld,\"k\":%lld,\"stride\":%lld,"
                  "\"pad\":%lld,\"dtype\":\"%s\"}",
                  pass, (long long)s.N, (long long)s.C, (long long)s.H, (long long)s.W, (long long)s.O, (long long)s.k,
                  (long long)s.stride, (long long)s.pad, dtype_name(dt));
  };
  const std::vector<Call> calls = {
      {"conv2d fwd", dt, shape, spec("fwd"), flops, {{in, dt}, {w, dt}, {{s.O}, dt}}, {{out, dt}}, t.conv2d != nullptr,
       [=](const cpu::KernelTable& k, const Views& o, const Views& i) { k.conv2d(o[0], i[0], i[1], &i[2], st, pd, dil, 1); }},
      {"conv2d bwd data", dt, shape, spec("bwd_data"), flops, {{out, dt}, {w, dt}}, {{in, dt}}, t.conv2d_backward_input != nullptr,
       [=](const cpu::KernelTable& k, const Views& o, const Views& i) { k.conv2d_backward_input(o[0], i[0], i[1], st, pd, dil, 1); }},
      {"conv2d bwd weight", dt, shape, spec("bwd_weight"), flops, {{out, dt}, {in, dt}}, {{w, dt}, {{s.O}, dt}},
       t.conv2d_backward_weight != nullptr,
       [=](const cpu::KernelTable& k, const Views& o, const Views& i) { k.conv2d_backward_weight(o[0], &o[1], i[0], i[1], st, pd, dil, 1); }},
  };
  for (const Call& c : calls) run_call(bench, c, cpu::kernels(), t, s.timed);
}

}  // namespace

int main(int argc, char** argv) {
  return main_of("conv2d", argc, argv, [](Bench& bench) {
    for (DType dt : {DType::F32, DType::BF16}) {
      run_conv(bench, {2, 3, 9, 11, 5, 3, 1, 1, false}, dt);
      run_conv(bench, {1, 4, 10, 7, 6, 3, 2, 1, false}, dt);
      run_conv(bench, {2, 5, 7, 7, 3, 1, 1, 0, false}, dt);
    }
    const Conv unet[] = {
        {2, 320, 64, 64, 320, 3, 1, 1, true},    {2, 640, 32, 32, 640, 3, 1, 1, true}, {2, 1280, 16, 16, 1280, 3, 1, 1, true},
        {2, 4, 64, 64, 320, 3, 1, 1, true},      // conv_in
        {2, 320, 64, 64, 320, 3, 2, 1, true},    // downsample
        {2, 320, 32, 32, 640, 1, 1, 0, true},    // 1x1 skip
    };
    for (const Conv& s : unet) run_conv(bench, s, DType::BF16);
    run_conv(bench, unet[0], DType::F32);
  });
}
