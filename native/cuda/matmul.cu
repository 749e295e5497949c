// matmul.cu: batched matrix multiply out[i] = a[i] @ b[i], [B,M,K] x [B,K,N] -> [B,M,N], on the
// GPU: the choice between the GEMM versions that live side by side in gemm/ (the llm.c dev/cuda
// way; gemm/gemm.cuh says what they share):
//
//   version 1  gemm/v1_tiled.cu  16x16 shared-memory tiles, one output per thread: the baseline
//   version 2  gemm/v2_simt.cu   register tiles on the CUDA cores, 128x128 block, 8x8 per thread
//   version 3  gemm/v3_mma.cu    bf16 and f16 tensor cores (mma.sync, ldmatrix, cp.async), 128x128x32
//   version 4  gemm/v2_simt.cu   version 2's kernel with a 64x64 block, 4x4 per thread
//   version 5  gemm/v3_mma.cu    version 3's kernel with a 64x64x32 block
//
// The dispatcher (matmul): bf16 and f16 take the tensor cores (3 or 5) from sm_80 on, and the CUDA
// cores (2 or 4, in f32) below; f32 and f64 take the CUDA cores (2 or 4), so an f32 product stays
// f32-accurate (a bf16 autocast of f32 operands would be the caller's explicit choice, not made
// here). The 128x128 tile when the problem has at least one of them per multiprocessor, else the
// 64x64 one, which makes 4x the blocks and so fills more of the GPU on small or skinny problems.
// Version 1 is never picked: it is the baseline bench/ compares with. matmul_version runs one
// version whatever the dispatcher would pick, for the tests (each version on every layout) and
// bench/gpu (each timed).
//
// a and b may have any strides (a transposed view, a stride-0 broadcast batch: the TypeScript op
// layer has already broadcast the batch dims); out is contiguous. No version copies an operand.
//
// linear (a fused entry, cpu/fused.h) is F.linear's forward in one launch: out = act(x w^T + bias)
// + residual, the product read from w's strides as matmul reads a transposed view, and bias,
// activation and residual applied by the version's fused epilogue (gemm.cuh) as the output tile
// is stored. It dispatches as matmul does; a nonzero version forces one, for the tests.
#include <string>

#include "cuda/gemm/gemm.cuh"

namespace emu::EMU_DEVICE_NS {
namespace gemm {

DeviceTraits device_traits() {
#ifdef __CUDACC__
  static const DeviceTraits traits = [] {
    int device = 0, major = 0, minor = 0, sms = 0;
    if (cudaGetDevice(&device) != cudaSuccess || cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) != cudaSuccess ||
        cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess) {
      cudaGetLastError();
      fail(ErrorKind::Device, "matmul: cannot read the device's compute capability");
    }
    return DeviceTraits{major * 10 + minor, sms};
  }();
  return traits;
#else
  return DeviceTraits{90, 132};
#endif
}

namespace {

Problem problem_of(const View& out, const View& a, const View& b, const char* op) {
  if (a.ndim != 3 || b.ndim != 3 || out.ndim != 3) fail(ErrorKind::Shape, std::string(op) + ": expected 3-d views");
  Problem p{out.shape[0], out.shape[1], out.shape[2], a.shape[2], {}, {}};
  if (a.shape[0] != p.batch || b.shape[0] != p.batch || a.shape[1] != p.M || b.shape[1] != p.K || b.shape[2] != p.N)
    fail(ErrorKind::Shape, std::string(op) + ": shapes [" + std::to_string(a.shape[0]) + "," + std::to_string(a.shape[1]) + "," +
                               std::to_string(p.K) + "] and [" + std::to_string(b.shape[0]) + "," + std::to_string(b.shape[1]) +
                               "," + std::to_string(p.N) + "] do not match the output");
  if (!out.contiguous()) fail(ErrorKind::Shape, std::string(op) + ": output must be contiguous");
  if (a.dtype != out.dtype || b.dtype != out.dtype) fail(ErrorKind::DType, std::string(op) + ": operand dtypes differ");
  for (int d = 0; d < 3; d++) {
    p.sa[d] = a.strides[d];
    p.sb[d] = b.strides[d];
  }
  return p;
}

bool empty(const Problem& p) { return p.batch == 0 || p.M == 0 || p.N == 0; }

// The 128x128 tile when there is at least one per multiprocessor, else the 64x64 one.
bool large_tile(const Problem& p, const DeviceTraits& d) {
  return ((p.M + 127) / 128) * ((p.N + 127) / 128) * p.batch >= d.multiprocessors;
}

// The dispatcher's choice: bf16 and f16 on the tensor cores from sm_80 on, else the CUDA cores;
// the 128x128 tile when the problem has one per multiprocessor.
void dispatch(const Problem& p, DType dtype, void* out, const void* a, const void* b, const Epilogue* e) {
  const DeviceTraits d = device_traits();
  const bool large = large_tile(p, d);
  if ((dtype == DType::BF16 || dtype == DType::F16) && d.sm >= 80) {
    v3::run(p, large ? v3::Tile::Large : v3::Tile::Small, dtype, out, a, b, e);
  } else {
    v2::run(p, large ? v2::Tile::Large : v2::Tile::Small, dtype, out, a, b, e);
  }
}

// Version `version` (1-5) whatever the dispatcher would pick; `op` names the caller in errors.
void run_version(int version, const Problem& p, DType dtype, void* out, const void* a, const void* b, const Epilogue* e, const char* op) {
  if (version < 1 || version > 5) fail(ErrorKind::Value, std::string(op) + ": no version " + std::to_string(version) + " (there are 1 to 5)");
  if ((version == 3 || version == 5) && dtype != DType::BF16 && dtype != DType::F16)
    fail(ErrorKind::Value, std::string(op) + ": version " + std::to_string(version) + " (bf16/f16 tensor cores) does not take " +
                               dtype_name(dtype) + " operands");
  if ((version == 3 || version == 5) && device_traits().sm < 80)
    fail(ErrorKind::Device, std::string(op) + ": version " + std::to_string(version) + " needs sm_80 or newer (mma.sync bf16/f16)");
  if (empty(p)) return;
  switch (version) {
    case 1: v1::run(p, dtype, out, a, b, e); return;
    case 2: v2::run(p, v2::Tile::Large, dtype, out, a, b, e); return;
    case 3: v3::run(p, v3::Tile::Large, dtype, out, a, b, e); return;
    case 4: v2::run(p, v2::Tile::Small, dtype, out, a, b, e); return;
    case 5: v3::run(p, v3::Tile::Small, dtype, out, a, b, e); return;
  }
}

}  // namespace
}  // namespace gemm

void matmul(const View& out, const View& a, const View& b) {
  using namespace gemm;
  const Problem p = problem_of(out, a, b, "matmul");
  if (!empty(p)) dispatch(p, out.dtype, out.data, a.data, b.data, nullptr);
}

void matmul_version(int version, const View& out, const View& a, const View& b) {
  using namespace gemm;
  run_version(version, problem_of(out, a, b, "matmulVersion"), out.dtype, out.data, a.data, b.data, nullptr, "matmulVersion");
}

void linear(const View& out, const View* pre, const View& x, const View& w, const View* bias, const View* residual, int act,
            int version) {
  using namespace gemm;
  const char* op = "linear";
  if (x.ndim != 2 || w.ndim != 2 || out.ndim != 2) fail(ErrorKind::Shape, "linear: expected 2-d x, weight and output");
  const long long R = x.shape[0], K = x.shape[1], N = w.shape[0];
  if (w.shape[1] != K || out.shape[0] != R || out.shape[1] != N)
    fail(ErrorKind::Shape, "linear: x [" + std::to_string(R) + "," + std::to_string(K) + "], weight [" + std::to_string(N) + "," +
                               std::to_string(w.shape[1]) + "] and the output do not match");
  if (!out.contiguous()) fail(ErrorKind::Shape, "linear: output must be contiguous");
  for (const View* v : {&x, &w, bias, residual, pre})
    if (v && v->dtype != out.dtype) fail(ErrorKind::DType, "linear: operand dtypes differ");
  if (bias && (bias->ndim != 1 || bias->shape[0] != N)) fail(ErrorKind::Shape, "linear: bias must have shape [" + std::to_string(N) + "]");
  for (const View* v : {residual, pre})
    if (v && (v->ndim != 2 || v->shape[0] != R || v->shape[1] != N)) fail(ErrorKind::Shape, "linear: residual and pre must have the output's shape");
  if (pre && !pre->contiguous()) fail(ErrorKind::Shape, "linear: pre must be contiguous");
  if (act != -1 && !is_activation(act)) fail(ErrorKind::Value, "linear: activation " + std::to_string(act) + " is not relu, gelu or silu");
  // out = x w^T: a = x [1, R, K], b = w^T [1, K, N] read through w's strides.
  const Problem p{1, R, N, K, {0, x.strides[0], x.strides[1]}, {0, w.strides[1], w.strides[0]}};
  const Epilogue e{bias ? bias->data : nullptr, bias ? bias->strides[0] : 0,
                   residual ? residual->data : nullptr, {0, residual ? residual->strides[0] : 0, residual ? residual->strides[1] : 0},
                   pre ? pre->data : nullptr, act};
  if (version != 0) {
    run_version(version, p, out.dtype, out.data, x.data, w.data, &e, op);
  } else if (!empty(p)) {
    dispatch(p, out.dtype, out.data, x.data, w.data, &e);
  }
}

}  // namespace emu::EMU_DEVICE_NS
