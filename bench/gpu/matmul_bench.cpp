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
  });
}
