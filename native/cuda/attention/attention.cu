// attention.cu: the fused attention entries of this device's FusedKernels table (cpu/fused.h) and
// the dispatcher choosing a version for each call:
//   v1 (v1_simt.cu): CUDA-core tiles, any head dim, f32, f64, bf16 and f16;
//   v2 (v2_mma.cu): bf16 and f16 on tensor cores (mma.sync m16n8k16 fed by ldmatrix), FlashAttention-2's
//       work partitioning, for head dims that are multiples of 8 up to 128;
//   v3 (v3_pipelined.cu): v2's forward with double-buffered cp.async K/V tiles and masking only
//       where needed; its backward is v2's.
// bf16 and f16 take v3 where it applies (the same head dims as v2), everything else v1; each version's
// launch configuration (v2/v3: the padded head width) is picked inside the version.
// attention_version(n) forces a version for
// every later call on this device (0 restores the dispatcher's choice), so tests and benchmarks
// can run each one; a forced version that cannot take a call is an error, never a silent switch.
#include <atomic>

#include "cuda/attention/common.cuh"

namespace emu::EMU_DEVICE_NS {
namespace attention {
namespace {

std::atomic<int> forced_version{0};

Strides4 strides_of(const View* v) {
  if (!v) return {0, 0, 0, 0};
  Strides4 s{v->strides[0], v->ndim > 1 ? v->strides[1] : 0, v->ndim > 2 ? v->strides[2] : 0, v->ndim > 3 ? v->strides[3] : 0};
  return s;
}

Params params_of(const View& q, const View& k, const View& v, const View* bias, const View* kpm, double scale, bool causal) {
  Params p{};
  p.B = q.shape[0], p.H = q.shape[1], p.Lq = q.shape[2], p.D = q.shape[3], p.Lk = k.shape[2], p.Dv = v.shape[3];
  p.q = strides_of(&q), p.k = strides_of(&k), p.v = strides_of(&v), p.bias = strides_of(bias);
  // kpm [B, Lk]: its batch stride in .b and key stride in .l, as logit() reads them.
  if (kpm) p.kpm = Strides4{kpm->strides[0], 0, kpm->strides[1], 0};
  p.scale = scale;
  p.causal = causal;
  if (p.B * p.H > 65535) fail(ErrorKind::Shape, "attention: more than 65535 (batch, head) pairs");
  return p;
}

template <class T>
Operands<T> operands_of(const View& q, const View& k, const View& v, const View* bias, const View* kpm) {
  Operands<T> o{};
  o.q = q.ptr<const T>(), o.k = k.ptr<const T>(), o.v = v.ptr<const T>();
  o.bias = bias ? bias->ptr<const T>() : nullptr;
  o.kpm = kpm ? kpm->ptr<const bool>() : nullptr;
  return o;
}

// The version for a call: the forced one (checked) or the dispatcher's choice.
int version_for(const Params& p, DType dtype, const char* op) {
  const int forced = forced_version.load();
  const bool half = dtype == DType::BF16 || dtype == DType::F16;
  if (forced >= 2 && (!half || !v2::supports(p)))
    fail(ErrorKind::Value, std::string(op) + ": version " + std::to_string(forced) +
                               " takes bf16 or f16 with head dims that are multiples of 8 up to 128, got " + dtype_name(dtype) +
                               " with D = " + std::to_string(p.D) + ", Dv = " + std::to_string(p.Dv));
  if (forced != 0) return forced;
  return half && v2::supports(p) ? 3 : 1;
}

template <class F>
void by_dtype(DType d, const char* op, F&& f) {
  if (d == DType::F32) f(float{});
  else if (d == DType::F64) f(double{});
  else if (d == DType::BF16) f(bf16{});
  else if (d == DType::F16) f(f16{});
  else fail(ErrorKind::DType, std::string(op) + ": f32, f64, bf16 or f16 only, got " + dtype_name(d));
}

}  // namespace
}  // namespace attention

void attention_forward(const View& out, const View& lse, const View& q, const View& k, const View& v, const View* bias,
                       const View* kpm, double scale, bool causal) {
  using namespace attention;
  Params p = params_of(q, k, v, bias, kpm, scale, causal);
  p.out = strides_of(&out), p.lse = strides_of(&lse);
  if (p.B * p.H == 0) return;
  const int version = version_for(p, q.dtype, "attention");
  by_dtype(q.dtype, "attention", [&](auto t) {
    using T = decltype(t);
    Operands<T> o = operands_of<T>(q, k, v, bias, kpm);
    o.out = out.ptr<T>();
    o.lse = lse.ptr<Acc<T>>();
    if constexpr (kIsHalf<T>) {
      if (version == 3) return v3::forward(p, o);
      if (version == 2) return v2::forward(p, o);
    }
    v1::forward(p, o);
  });
}

void attention_backward(const View& dq, const View& dk, const View& dv, const View* dbias, const View& dout,
                        const View& out, const View& lse, const View& q, const View& k, const View& v, const View* bias,
                        const View* kpm, double scale, bool causal) {
  using namespace attention;
  Params p = params_of(q, k, v, bias, kpm, scale, causal);
  p.out = strides_of(&out), p.lse = strides_of(&lse), p.dout = strides_of(&dout);
  p.dq = strides_of(&dq), p.dk = strides_of(&dk), p.dv = strides_of(&dv), p.dbias = strides_of(dbias);
  if (p.B * p.H == 0) return;
  const int version = version_for(p, q.dtype, "attentionBackward");
  by_dtype(q.dtype, "attentionBackward", [&](auto t) {
    using T = decltype(t);
    Operands<T> o = operands_of<T>(q, k, v, bias, kpm);
    o.out = const_cast<T*>(out.ptr<const T>());
    o.lse = const_cast<Acc<T>*>(lse.ptr<const Acc<T>>());
    o.dout = dout.ptr<const T>();
    o.dq = dq.ptr<T>(), o.dk = dk.ptr<T>(), o.dv = dv.ptr<T>();
    o.dbias = dbias ? dbias->ptr<T>() : nullptr;
    if constexpr (kIsHalf<T>) {
      if (version >= 2) return v2::backward(p, o);  // v3 changes only the forward
    }
    v1::backward(p, o);
  });
}

void attention_version(int version) {
  if (version < 0 || version > 3)
    fail(ErrorKind::Value, "attentionVersion: no version " + std::to_string(version) +
                                " (1: CUDA cores, 2: bf16/f16 tensor cores, 3: 2 pipelined; 0: the dispatcher's choice)");
  attention::forced_version.store(version);
}

}  // namespace emu::EMU_DEVICE_NS
