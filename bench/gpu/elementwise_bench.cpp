// elementwise_bench.cpp: the memory-bound kernels of the device's KernelTable: copy (contiguous,
// transposed, casting), unary, binary (same shape and broadcast), reduce, softmax, index_select
// (an embedding lookup) and RoPE, plus the fused SwiGLU gate (FusedKernels), each checked
// against the CPU's kernel of the same table entry on the same inputs and timed.
//
// Every case is one call `call(table, out, inputs)`, made once with the CPU's table on host views
// and once with the device's on device views, so the check compares the same entry on both
// sides. Bytes are the compulsory traffic (each input read once, the output written once);
// bench/gpu/report.py divides the achieved TB/s by the measured copy bandwidth.
#include "bench.h"

using namespace emu;
using namespace emu::bench;

namespace {

using Call = TableCall<cpu::KernelTable>;
using Views = std::vector<View>;

// The last two dims swapped: a transposed view, no copy.
View transposed(View v) {
  std::swap(v.shape[v.ndim - 1], v.shape[v.ndim - 2]);
  std::swap(v.strides[v.ndim - 1], v.strides[v.ndim - 2]);
  return v;
}

std::string spec(const char* name, const std::string& shapes, DType dtype) {
  return format("{\"op\":\"%s\",\"shapes\":[%s],\"dtype\":\"%s\"}", name, shapes.c_str(), dtype_name(dtype));
}

}  // namespace

int main(int argc, char** argv) {
  return main_of("elementwise", argc, argv, [](Bench& bench) {
    const cpu::KernelTable& t = bench.table();
    const cpu::FusedKernels& f = bench.fused();
    struct Size {
      int64_t n, rows, cols, vocab, tokens, dim, heads, head_dim, mlp;
      bool timed;
    };
    // Timed: 64M elements, [8192, 8192], LLaMA-7B's vocabulary, width, heads and MLP width.
    for (const Size& z : {Size{1001, 37, 53, 101, 29, 19, 3, 16, 53, false},
                          Size{int64_t(1) << 26, 8192, 8192, 32000, 8192, 4096, 32, 128, 11008, true}}) {
      if (!bench.wants(z.timed)) continue;
      const std::string n = format("[%lld]", (long long)z.n), rc = format("[%lld,%lld]", (long long)z.rows, (long long)z.cols),
                        row = format("[%lld]", (long long)z.cols);
      for (DType dt : {DType::F32, DType::BF16}) {
        std::vector<Call> ops = {
            {"copy", dt, "", spec("copy", n, dt), 0, {{{z.n}, dt}}, {{{z.n}, dt}}, t.copy != nullptr,
             [](const cpu::KernelTable& k, const Views& o, const Views& in) { k.copy(o[0], in[0]); }},
            {"copy transposed", dt, "", spec("transpose", rc, dt), 0, {{{z.cols, z.rows}, dt}}, {{{z.rows, z.cols}, dt}}, t.copy != nullptr,
             [](const cpu::KernelTable& k, const Views& o, const Views& in) { k.copy(o[0], transposed(in[0])); }},
            {"unary exp", dt, "", spec("exp", n, dt), 0, {{{z.n}, dt}}, {{{z.n}, dt}}, t.unary != nullptr,
             [](const cpu::KernelTable& k, const Views& o, const Views& in) { k.unary(cpu::UnaryOp::Exp, o[0], in[0], 0, 0); }},
            {"binary add", dt, "", spec("add", n + "," + n, dt), 0, {{{z.n}, dt}, {{z.n}, dt}}, {{{z.n}, dt}}, t.binary != nullptr,
             [](const cpu::KernelTable& k, const Views& o, const Views& in) { k.binary(cpu::BinaryOp::Add, o[0], in[0], in[1]); }},
            {"binary add broadcast", dt, "", spec("add", rc + "," + row, dt), 0, {{{z.rows, z.cols}, dt}, {{z.cols}, dt}},
             {{{z.rows, z.cols}, dt}}, t.binary != nullptr,
             [](const cpu::KernelTable& k, const Views& o, const Views& in) {
               View b = in[1];  // [cols] broadcast over the rows: stride 0
               b.ndim = 2;
               b.shape[1] = b.shape[0];
               b.strides[1] = b.strides[0];
               b.shape[0] = o[0].shape[0];
               b.strides[0] = 0;
               k.binary(cpu::BinaryOp::Add, o[0], in[0], b);
             }},
            {"reduce sum (last dim)", dt, "", spec("sum", rc, dt), 0, {{{z.rows, z.cols}, dt}}, {{{z.rows}, dt}}, t.reduce != nullptr,
             [](const cpu::KernelTable& k, const Views& o, const Views& in) { k.reduce(cpu::ReduceOp::Sum, o[0], in[0], 1, 0); }},
            {"softmax (last dim)", dt, "", spec("softmax", rc, dt), 0, {{{z.rows, z.cols}, dt}}, {{{z.rows, z.cols}, dt}},
             t.softmax != nullptr, [](const cpu::KernelTable& k, const Views& o, const Views& in) { k.softmax(o[0], in[0], 1, false); }},
            {"index_select (embedding)", dt, "",
             spec("index_select", format("[%lld,%lld],[%lld]", (long long)z.vocab, (long long)z.dim, (long long)z.tokens), dt), 0,
             {{{z.vocab, z.dim}, dt}, {{z.tokens}, DType::I32, 0, double(z.vocab)}}, {{{z.tokens, z.dim}, dt}}, t.index_select != nullptr,
             [](const cpu::KernelTable& k, const Views& o, const Views& in) { k.index_select(o[0], in[0], 0, in[1]); }},
        };
        if (dt == DType::F32)
          ops.push_back({"copy cast f32->bf16", dt, "", spec("cast_bf16", n, dt), 0, {{{z.n}, dt}}, {{{z.n}, DType::BF16}},
                         t.copy != nullptr, [](const cpu::KernelTable& k, const Views& o, const Views& in) { k.copy(o[0], in[0]); }});
        for (const Call& op : ops) run_call(bench, op, cpu::kernels(), t, z.timed);

        // LLaMA's fused elementwise pieces: RoPE over x [tokens, heads, head dim] with cos and sin
        // [tokens, 1, head dim] broadcast over the heads, and the SwiGLU gate silu(a) b.
        const std::vector<int64_t> x{z.tokens, z.heads, z.head_dim}, cs{z.tokens, 1, z.head_dim}, mlp{z.tokens, z.mlp};
        const std::string xs = format("[%lld,%lld,%lld]", (long long)z.tokens, (long long)z.heads, (long long)z.head_dim),
                          ms = format("[%lld,%lld]", (long long)z.tokens, (long long)z.mlp);
        const int64_t heads = z.heads;
        run_call(bench,
                 Call{"rope", dt, "", spec("rope", xs, dt), 0, {{x, dt}, {cs, dt}, {cs, dt}}, {{x, dt}}, t.rope != nullptr,
                      [heads](const cpu::KernelTable& k, const Views& o, const Views& in) {
                        View c = in[1], s = in[2];  // [tokens, 1, head dim] as [tokens, heads, head dim]: stride 0
                        c.shape[1] = s.shape[1] = heads;
                        c.strides[1] = s.strides[1] = 0;
                        k.rope(o[0], in[0], c, s, false);
                      }},
                 cpu::kernels(), t, z.timed);
        using FusedCall = TableCall<cpu::FusedKernels>;
        const std::vector<FusedCall> gates = {
            {"swiglu fwd", dt, "", spec("swiglu", ms, dt), 0, {{mlp, dt}, {mlp, dt}}, {{mlp, dt}}, f.swiglu != nullptr,
             [](const cpu::FusedKernels& k, const Views& o, const Views& in) { k.swiglu(o[0], in[0], in[1]); }},
            {"swiglu bwd", dt, "", spec("swiglu_backward", ms, dt), 0, {{mlp, dt}, {mlp, dt}, {mlp, dt}}, {{mlp, dt}, {mlp, dt}},
             f.swiglu_backward != nullptr,
             [](const cpu::FusedKernels& k, const Views& o, const Views& in) { k.swiglu_backward(o[0], o[1], in[0], in[1], in[2]); }},
        };
        for (const FusedCall& op : gates) run_call(bench, op, cpu::fused_kernels(), f, z.timed);
      }
    }
  });
}
