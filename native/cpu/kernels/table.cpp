// table.cpp: gathers this instruction set's kernels into its KernelTable (see kernels.h).
#include "../kernels.h"

namespace emu::cpu::EMU_ISA {

void copy(const View& out, const View& in);
void fill(const View& out, double value);
void unary(UnaryOp op, const View& out, const View& in, double a, double b);
void binary(BinaryOp op, const View& out, const View& a, const View& b);
void where(const View& out, const View& cond, const View& a, const View& b);
void rope(const View& out, const View& x, const View& cos, const View& sin, bool inverse);
void reduce(ReduceOp op, const View& out, const View& in, int nkeep, double correction);
void softmax(const View& out, const View& in, int dim, bool log);
void cumsum(const View& out, const View& in, int dim);
void matmul(const View& out, const View& a, const View& b);
void gather(const View& out, const View& in, int dim, const View& index);
void scatter_add(const View& out, int dim, const View& index, const View& src);
void index_select(const View& out, const View& in, int dim, const View& index);
void triangle(const View& out, const View& in, int64_t k, bool upper);
void rand_uniform(const View& out, uint64_t seed, uint64_t offset, double low, double high);
void rand_normal(const View& out, uint64_t seed, uint64_t offset, double mean, double std);
void rand_int(const View& out, uint64_t seed, uint64_t offset, int64_t low, int64_t high);
void randperm(const View& out, uint64_t seed, uint64_t offset);
void conv2d(const View& out, const View& in, const View& weight, const View* bias, const int64_t* stride,
            const int64_t* padding, const int64_t* dilation, int64_t groups);
void max_pool2d(const View& out, const View* indices, const View& in, const int64_t* kernel, const int64_t* stride,
                const int64_t* padding, const int64_t* dilation);
void avg_pool2d(const View& out, const View& in, const int64_t* kernel, const int64_t* stride, const int64_t* padding,
                bool count_include_pad);
void upsample_nearest2d(const View& out, const View& in);
void conv2d_backward_input(const View& grad_in, const View& grad_out, const View& weight, const int64_t* stride,
                           const int64_t* padding, const int64_t* dilation, int64_t groups);
void conv2d_backward_weight(const View& grad_w, const View* grad_bias, const View& grad_out, const View& in,
                            const int64_t* stride, const int64_t* padding, const int64_t* dilation, int64_t groups);
void avg_pool2d_backward(const View& grad_in, const View& grad_out, const int64_t* kernel, const int64_t* stride,
                         const int64_t* padding, bool count_include_pad);
void upsample_nearest2d_backward(const View& grad_in, const View& grad_out);
double peak_gflops(int64_t iters);
double triad_gbps(int64_t n, int reps);
void matmul_version(int version, const View& out, const View& a, const View& b);
int bf16_dot();

#define EMU_STR2(x) #x
#define EMU_STR(x) EMU_STR2(x)

const KernelTable& kernel_table() {
  static const KernelTable table = {
      EMU_STR(EMU_ISA), copy, fill, unary, binary, where, rope, reduce, softmax, cumsum, matmul, gather, scatter_add,
      index_select, triangle, rand_uniform, rand_normal, rand_int, randperm, conv2d, max_pool2d, avg_pool2d,
      upsample_nearest2d, conv2d_backward_input, conv2d_backward_weight, avg_pool2d_backward,
      upsample_nearest2d_backward, peak_gflops, triad_gbps, matmul_version, bf16_dot,
      nullptr, nullptr,  // set_conv2d_version, conv2d_last_kernel: the CPU has one conv2d kernel
  };
  return table;
}

}  // namespace emu::cpu::EMU_ISA
