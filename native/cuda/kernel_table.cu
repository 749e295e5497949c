// kernel_table.cu: this device's op kernels gathered into its kernel table (cuda/kernels.h).
// Entries left null have no kernel on the device yet; the addon reports them as DeviceErrors.
#include <type_traits>

#include "cuda/kernels.h"
#include "cuda/device.cuh"

namespace emu::EMU_DEVICE_NS {

// elementwise.cu
void copy(const View& out, const View& in);
void fill(const View& out, double value);
void unary(cpu::UnaryOp op, const View& out, const View& in, double a, double b);
void binary(cpu::BinaryOp op, const View& out, const View& a, const View& b);
void where(const View& out, const View& cond, const View& a, const View& b);
void rope(const View& out, const View& x, const View& cos, const View& sin, bool inverse);
// reduce.cu
void reduce(cpu::ReduceOp op, const View& out, const View& in, int nkeep, double correction);
void softmax(const View& out, const View& in, int dim, bool log);
// matmul.cu (the GEMM versions in gemm/)
void matmul(const View& out, const View& a, const View& b);
void matmul_version(int version, const View& out, const View& a, const View& b);
// index.cu
void gather(const View& out, const View& in, int dim, const View& index);
void scatter_add(const View& out, int dim, const View& index, const View& src);
void index_select(const View& out, const View& in, int dim, const View& index);
void triangle(const View& out, const View& in, int64_t k, bool upper);
void cumsum(const View& out, const View& in, int dim);
// conv.cu
void conv2d(const View& out, const View& in, const View& weight, const View* bias, const int64_t* stride,
            const int64_t* padding, const int64_t* dilation, int64_t groups);
void conv2d_backward_input(const View& grad_in, const View& grad_out, const View& weight, const int64_t* stride,
                           const int64_t* padding, const int64_t* dilation, int64_t groups);
void conv2d_backward_weight(const View& grad_w, const View* grad_bias, const View& grad_out, const View& in,
                            const int64_t* stride, const int64_t* padding, const int64_t* dilation, int64_t groups);
void set_conv2d_version(int version);
const char* conv2d_last_kernel();
// image.cu
void max_pool2d(const View& out, const View* indices, const View& in, const int64_t* kernel, const int64_t* stride,
                const int64_t* padding, const int64_t* dilation);
void avg_pool2d(const View& out, const View& in, const int64_t* kernel, const int64_t* stride, const int64_t* padding,
                bool count_include_pad);
void upsample_nearest2d(const View& out, const View& in);
void avg_pool2d_backward(const View& grad_in, const View& grad_out, const int64_t* kernel, const int64_t* stride,
                         const int64_t* padding, bool count_include_pad);
void upsample_nearest2d_backward(const View& grad_in, const View& grad_out);
// random.cu
void rand_uniform(const View& out, uint64_t seed, uint64_t offset, double low, double high);
void rand_normal(const View& out, uint64_t seed, uint64_t offset, double mean, double stddev);
void rand_int(const View& out, uint64_t seed, uint64_t offset, int64_t low, int64_t high);
void randperm(const View& out, uint64_t seed, uint64_t offset);
// norm.cu, cross_entropy.cu, adamw.cu, swiglu.cu, attention/attention.cu, matmul.cu (linear): the fused kernels,
// declared by the types of their table entries (cpu/fused.h spells out each signature once).
template <class Entry>
using FusedFn = std::remove_pointer_t<Entry>;
FusedFn<decltype(cpu::FusedKernels::norm_forward)> norm_forward;
FusedFn<decltype(cpu::FusedKernels::linear)> linear;
FusedFn<decltype(cpu::FusedKernels::adamw_mixed)> adamw_mixed;
FusedFn<decltype(cpu::FusedKernels::norm_version)> norm_version;
FusedFn<decltype(cpu::FusedKernels::norm_backward)> norm_backward;
FusedFn<decltype(cpu::FusedKernels::group_norm_forward)> group_norm_forward;
FusedFn<decltype(cpu::FusedKernels::group_norm_backward)> group_norm_backward;
FusedFn<decltype(cpu::FusedKernels::cross_entropy)> cross_entropy;
FusedFn<decltype(cpu::FusedKernels::cross_entropy_backward)> cross_entropy_backward;
FusedFn<decltype(cpu::FusedKernels::adamw)> adamw;
FusedFn<decltype(cpu::FusedKernels::swiglu)> swiglu;
FusedFn<decltype(cpu::FusedKernels::swiglu_backward)> swiglu_backward;
FusedFn<decltype(cpu::FusedKernels::attention)> attention_forward;
FusedFn<decltype(cpu::FusedKernels::attention_backward)> attention_backward;
FusedFn<decltype(cpu::FusedKernels::attention_version)> attention_version;

#define EMU_STR2(x) #x
#define EMU_STR(x) EMU_STR2(x)

const cpu::KernelTable& kernel_table() {
  static const cpu::KernelTable table = [] {
    cpu::KernelTable t{};
    t.isa = EMU_STR(EMU_DEVICE_NS);
    t.copy = copy;
    t.fill = fill;
    t.unary = unary;
    t.binary = binary;
    t.where = where;
    t.rope = rope;
    t.reduce = reduce;
    t.softmax = softmax;
    t.cumsum = cumsum;
    t.matmul = matmul;
    t.gather = gather;
    t.scatter_add = scatter_add;
    t.index_select = index_select;
    t.triangle = triangle;
    t.rand_uniform = rand_uniform;
    t.rand_normal = rand_normal;
    t.rand_int = rand_int;
    t.randperm = randperm;
    t.conv2d = conv2d;
    t.max_pool2d = max_pool2d;
    t.avg_pool2d = avg_pool2d;
    t.upsample_nearest2d = upsample_nearest2d;
    t.conv2d_backward_input = conv2d_backward_input;
    t.conv2d_backward_weight = conv2d_backward_weight;
    t.set_conv2d_version = set_conv2d_version;
    t.conv2d_last_kernel = conv2d_last_kernel;
    t.avg_pool2d_backward = avg_pool2d_backward;
    t.upsample_nearest2d_backward = upsample_nearest2d_backward;
    t.matmul_version = matmul_version;
    return t;
  }();
  return table;
}

// The fused kernels (cpu/fused.h) this device has; entries still null take the composed path.
const cpu::FusedKernels& fused_table() {
  static const cpu::FusedKernels table = [] {
    cpu::FusedKernels t{};
    t.norm_forward = norm_forward;
    t.norm_backward = norm_backward;
    t.group_norm_forward = group_norm_forward;
    t.group_norm_backward = group_norm_backward;
    t.cross_entropy = cross_entropy;
    t.cross_entropy_backward = cross_entropy_backward;
    t.adamw = adamw;
    t.swiglu = swiglu;
    t.swiglu_backward = swiglu_backward;
    t.attention = attention_forward;
    t.attention_backward = attention_backward;
    t.attention_version = attention_version;
    t.linear = linear;
    t.adamw_mixed = adamw_mixed;
    t.norm_version = norm_version;
    return t;
  }();
  return table;
}

}  // namespace emu::EMU_DEVICE_NS
