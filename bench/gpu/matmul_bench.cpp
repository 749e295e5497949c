// matmul_bench.cpp: the device's matmul kernels, the default (KernelTable::matmul) and every
// version that KernelTable::matmul_version accepts, checked against the CPU's matmul and timed.
//
// The versions are found by probing: version 1, 2, ... on a tiny problem in f32 and bf16 until
// both throw a ValueError ("no version N", as every matmul_version says); a version made for one
// dtype reads "unsupported" on the other's cases. So a GEMM version added to native/cuda is
// checked and timed here without editing this file.
//
// Large cases are checked on a sample of output rows (every 67th row of the first and last
// batch entries, computed by the CPU kernel through a strided view of A), small odd cases on
// every element; B is also given as a transposed view (strides, no copy). FLOPs: 2 B M N K.
//
// Then the GEMM's fused epilogue (FusedKernels::linear, gemm/gemm.cuh): a linear layer's
// gelu(x W^T + b) as one kernel, beside the same three passes unfused (matmul, a broadcast bias
// add, gelu), both checked against the CPU; their time ratio is what the epilogue saves.
#include "bench.h"

using namespace emu;
using namespace emu::bench;

namespace {

struct Shape {
  int64_t B, M, N, K;
  bool transposed_b;  // b is the view [B,K,N] of a [B,N,K] buffer
  bool timed;
};

// [B,K,N] over memory laid out as [B,N,K] when transposed.
View b_view(View stored, const Shape& s) {
  if (!s.transposed_b) return stored;
  std::swap(stored.shape[1], stored.shape[2]);
  std::swap(stored.strides[1], stored.strides[2]);
  return stored;
}

// The versions matmul_version accepts, probed on a 16x16x16 problem in f32 and in bf16: version v
// exists unless both calls throw a ValueError (the "no version v" the list ends with; a version
// for one dtype only refuses the other with a ValueError too).
std::vector<int> probe_versions(Bench& bench) {
  std::vector<int> versions;
  if (!bench.table().matmul_version) return versions;
  HostTensor x = HostTensor::uniform({1, 16, 16}, 7);
  std::vector<DeviceTensor> operands;
  for (DType dt : {DType::F32, DType::BF16})
    for (int i = 0; i < 3; i++) {
      operands.push_back(bench.tensor({1, 16, 16}, dt));
      operands.back().upload(x);
    }
  for (int v = 1; v <= 32; v++) {
    int refused = 0;
    for (int d = 0; d < 2; d++) {
      try {
        bench.table().matmul_version(v, operands[3 * d].view(), operands[3 * d + 1].view(), operands[3 * d + 2].view());
      } catch (const Error& e) {
        refused += e.kind == ErrorKind::Value;
      }
    }
    if (refused == 2) break;
    versions.push_back(v);
  }
  return versions;
}

void run_shape(Bench& bench, const std::vector<int>& versions, DType dtype, const Shape& s) {
  if (!bench.wants(s.timed)) return;
  // Inputs, rounded to the dtype, and the CPU's result on the sampled rows of each sampled batch.
  HostTensor a = HostTensor::uniform({s.B, s.M, s.K}, 11);
  HostTensor b = HostTensor::uniform({s.B, s.transposed_b ? s.N : s.K, s.transposed_b ? s.K : s.N}, 12);
  DeviceTensor da = bench.upload(a, dtype), db = bench.upload(b, dtype), out = bench.tensor({s.B, s.M, s.N}, dtype);
  const int64_t step = s.timed ? 67 : 1, rows = (s.M + step - 1) / step;
  std::vector<int64_t> batches = {0};
  for (int64_t i = 1; i < s.B; i++)
    if (!s.timed || i == s.B - 1) batches.push_back(i);
  HostTensor want({int64_t(batches.size()), rows, s.N});
  for (size_t i = 0; i < batches.size(); i++) {
    View av = make_view(a.data.data() + batches[i] * s.M * s.K, DType::F32, {1, rows, s.K}, DeviceKind::Cpu);
    av.strides[1] = step * s.K;
    View bv = b_view(make_view(b.data.data() + batches[i] * s.K * s.N, DType::F32, {1, b.shape[1], b.shape[2]}, DeviceKind::Cpu), s);
    cpu::kernels().matmul(make_view(want.data.data() + i * rows * s.N, DType::F32, {1, rows, s.N}, DeviceKind::Cpu), av, bv);
  }
  auto check = [&](Measure& m) {
    const HostTensor got = out.download();
    HostTensor sampled(want.shape);
    for (size_t i = 0; i < batches.size(); i++)
      for (int64_t r = 0; r < rows; r++)
        std::copy_n(got.data.begin() + (batches[i] * s.M + r * step) * s.N, s.N, sampled.data.begin() + (i * rows + r) * s.N);
    m.check("out", sampled, want);
  };

  const double elem = dtype_size(dtype);
  Case c{"", dtype, shape_name({s.B, s.M, s.N, s.K}) + (s.transposed_b ? " bT" : ""),
         format("{\"op\":\"matmul\",\"B\":%lld,\"M\":%lld,\"N\":%lld,\"K\":%lld,\"transposed_b\":%s,\"dtype\":\"%s\"}", (long long)s.B,
                (long long)s.M, (long long)s.N, (long long)s.K, s.transposed_b ? "true" : "false", dtype_name(dtype)),
         2.0 * s.B * s.M * s.N * s.K, elem * s.B * (s.M * s.K + s.K * s.N + s.M * s.N), s.timed};
  const View ov = out.view(), av = da.view(), bv = b_view(db.view(), s);
  c.kernel = "matmul (default)";
  bench.run(c, bench.table().matmul != nullptr, [&](Measure& m) {
    out.poison();
    bench.table().matmul(ov, av, bv);
    check(m);
    m.time([&] { bench.table().matmul(ov, av, bv); });
  });
  for (int v : versions) {
    c.kernel = "matmul v" + std::to_string(v);
    bench.run(c, true, [&](Measure& m) {
      out.poison();
      bench.table().matmul_version(v, ov, av, bv);
      check(m);
      m.time([&] { bench.table().matmul_version(v, ov, av, bv); });
    });
  }
}

// gelu(x w^T + b) for x [R, K], w [N, K] (linear's weight layout): the fused epilogue and the
// unfused passes. The CPU reference is its matmul on the sampled rows, then the bias and gelu in
// f64 on the host.
void run_linear(Bench& bench, DType dtype, int64_t R, int64_t K, int64_t N, bool timed) {
  if (!bench.wants(timed)) return;
  HostTensor x = HostTensor::uniform({R, K}, 21), w = HostTensor::uniform({N, K}, 22), bias = HostTensor::uniform({N}, 23);
  DeviceTensor dx = bench.upload(x, dtype), dw = bench.upload(w, dtype), db = bench.upload(bias, dtype);
  DeviceTensor out = bench.tensor({R, N}, dtype), tmp = bench.tensor({R, N}, dtype);
  const int64_t step = timed ? 67 : 1, rows = (R + step - 1) / step;
  HostTensor want({rows, N});
  {
    View xv = make_view(x.data.data(), DType::F32, {1, rows, K}, DeviceKind::Cpu);
    xv.strides[1] = step * K;
    View wt = make_view(w.data.data(), DType::F32, {1, K, N}, DeviceKind::Cpu);  // w^T: [K, N] read from [N, K]
    wt.strides[1] = 1;
    wt.strides[2] = K;
    cpu::kernels().matmul(make_view(want.data.data(), DType::F32, {1, rows, N}, DeviceKind::Cpu), xv, wt);
    for (int64_t r = 0; r < rows; r++)
      for (int64_t n = 0; n < N; n++) {
        const double v = double(want.data[r * N + n]) + bias.data[n];
        want.data[r * N + n] = float(0.5 * v * (1 + std::erf(v / std::sqrt(2.0))));
      }
    want.round_to(dtype);
  }
  auto check = [&](Measure& m) {
    const HostTensor got = out.download();
    HostTensor sampled(want.shape);
    for (int64_t r = 0; r < rows; r++) std::copy_n(got.data.begin() + r * step * N, N, sampled.data.begin() + r * N);
    m.check("out", sampled, want);
  };
  // Device views: 2-d for linear; for the unfused passes, matmul's [1, R, K] x [1, K, N] (w^T by
  // strides) and the bias broadcast over the rows (stride 0).
  const View xv = dx.view(), wv = dw.view(), bv = db.view(), ov = out.view(), tv = tmp.view();
  View x3 = make_view(xv.data, dtype, {1, R, K}, xv.device), w3 = make_view(wv.data, dtype, {1, K, N}, wv.device);
  w3.strides[1] = 1;
  w3.strides[2] = K;
  View t3 = make_view(tv.data, dtype, {1, R, N}, tv.device), b2 = make_view(bv.data, dtype, {R, N}, bv.device);
  b2.strides[0] = 0;
  const double elem = dtype_size(dtype);
  Case c{"", dtype, shape_name({R, K, N}) + " gelu(x W^T + b)",
         format("{\"op\":\"linear_gelu\",\"R\":%lld,\"K\":%lld,\"N\":%lld,\"dtype\":\"%s\"}", (long long)R, (long long)K,
                (long long)N, dtype_name(dtype)),
         2.0 * R * N * K, elem * (R * K + N * K + N + R * N), timed};
  const cpu::FusedKernels& f = bench.fused();
  const int gelu = int(cpu::UnaryOp::GeluErf);
  c.kernel = "linear bias+gelu (fused epilogue)";
  bench.run(c, f.linear != nullptr, [&](Measure& m) {
    out.poison();
    f.linear(ov, nullptr, xv, wv, &bv, nullptr, gelu, 0);
    check(m);
    m.time([&] { f.linear(ov, nullptr, xv, wv, &bv, nullptr, gelu, 0); });
  });
  c.kernel = "matmul, bias add, gelu (3 kernels)";
  const cpu::KernelTable& t = bench.table();
  auto unfused = [&] {
    t.matmul(t3, x3, w3);
    t.binary(cpu::BinaryOp::Add, tv, tv, b2);
    t.unary(cpu::UnaryOp::GeluErf, ov, tv, 0, 0);
  };
  bench.run(c, t.matmul && t.binary && t.unary, [&](Measure& m) {
    out.poison();
    unfused();
    check(m);
    m.time(unfused);
  });
}

}  // namespace

int main(int argc, char** argv) {
  return main_of("matmul", argc, argv, [](Bench& bench) {
    const std::vector<int> versions = probe_versions(bench);
    if (!bench.table().matmul_version) bench.run(Case{"matmul versions", DType::BF16, "(matmul_version is null)"}, false, nullptr);
    for (DType dtype : {DType::F32, DType::BF16, DType::F16}) {
      run_shape(bench, versions, dtype, {1, 33, 47, 29, false, false});
      run_shape(bench, versions, dtype, {3, 17, 65, 31, false, false});
      run_shape(bench, versions, dtype, {2, 45, 37, 53, true, false});
    }
    run_shape(bench, versions, DType::BF16, {1, 4096, 4096, 4096, false, true});  // the target shape
    run_shape(bench, versions, DType::F16, {1, 4096, 4096, 4096, false, true});
    run_shape(bench, versions, DType::BF16, {1, 4096, 4096, 4096, true, true});
    run_shape(bench, versions, DType::BF16, {1, 2048, 2048, 2048, false, true});
    run_shape(bench, versions, DType::BF16, {1, 4095, 4097, 4093, false, true});  // no tile divides it
    run_shape(bench, versions, DType::F32, {1, 4096, 4096, 4096, false, true});
    for (DType dtype : {DType::F32, DType::BF16}) run_linear(bench, dtype, 37, 29, 45, false);
    run_linear(bench, DType::BF16, 8192, 4096, 11008, true);  // LLaMA-7B's MLP up projection over 8192 tokens
    run_linear(bench, DType::BF16, 8192, 1024, 4096, true);   // a skinny one, where the extra passes weigh more
  });
}
