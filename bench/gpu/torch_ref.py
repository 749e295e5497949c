"""torch_ref.py: PyTorch's time for every case the GPU bench drivers ran, on the same GPU, in the
same run (bench/gpu/run.sh calls it after the drivers).

Reads the drivers' rows (JSON lines, bench/gpu/bench.h), replays each distinct `spec` (op, shapes,
dtype) of the timed (large) cases with PyTorch on CUDA: torch.matmul (cuBLAS), F.scaled_dot_product_attention, F.conv2d and
aten.convolution_backward (cuDNN), F.rms_norm / F.layer_norm, F.cross_entropy, torch.optim.AdamW
(fused=True), and plain tensor ops for the elementwise family, and prints one JSON line per spec:
{"key": the spec as the drivers wrote it, "ms": median, "impl": what ran}. It always also times
the compute reference, a bf16 4096^3 matmul (report.py divides tensor-core rates by it).

Timed as the drivers time (bench.h): 3 warm-ups, then the median of repeats sized to about 300 ms,
each between two CUDA events and preceded by a write of a 256 MiB buffer (beyond the L2). TF32 is
off, so f32 matmuls and convolutions are true f32 like ours; cuDNN autotunes (benchmark mode)
during the warm-ups. Random inputs, never zeros.

usage: python3 bench/gpu/torch_ref.py ROWS.jsonl [--device cpu] > TORCH.jsonl   (exit 3: no torch or no CUDA)
--device cpu runs the same cases on the CPU, timed by the host clock: a way to try this script
without a GPU (on small cases: the rows of run.sh --sim with "timed" set).
"""
import json
import statistics
import sys
import time

COMPUTE_REFERENCE = {"op": "matmul", "B": 1, "M": 4096, "N": 4096, "K": 4096, "transposed_b": False, "dtype": "bf16"}
BUDGET_MS, WARMUPS, MIN_REPEATS, MAX_REPEATS = 300.0, 3, 5, 100


def spec_key(spec):
    return json.dumps(spec, sort_keys=True, separators=(",", ":"))


def main():
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        print("torch_ref: no PyTorch in this python3", file=sys.stderr)
        return 3
    on_cpu = sys.argv[2:] == ["--device", "cpu"]
    if not on_cpu and not torch.cuda.is_available():
        print("torch_ref: PyTorch sees no CUDA device", file=sys.stderr)
        return 3
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True  # cuDNN picks its fastest algorithm during the warm-ups
    dev = torch.device("cpu" if on_cpu else "cuda")
    dtypes = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}
    flush = torch.empty((4 if on_cpu else 256) << 20, dtype=torch.uint8, device=dev)

    def rand(*shape, dtype=torch.float32, low=-1.0, high=1.0, grad=False):
        t = (torch.rand(*shape, device=dev) * (high - low) + low).to(dtype)
        return t.requires_grad_(grad)

    def time_ms(fn):
        start, stop = (None, None) if on_cpu else (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))

        def once(r):
            flush.fill_(r & 0xFF)
            if on_cpu:
                t0 = time.perf_counter()
                fn()
                return (time.perf_counter() - t0) * 1e3
            start.record()
            fn()
            stop.record()
            stop.synchronize()
            return start.elapsed_time(stop)

        warm = 0.0
        for r in range(WARMUPS):
            warm = once(r)
        repeats = min(MAX_REPEATS, max(MIN_REPEATS, int(BUDGET_MS / max(warm, 1e-3))))
        return statistics.median(once(r) for r in range(repeats))

    def grad_of(out, inputs, dout):
        return lambda: torch.autograd.grad(out, inputs, dout, retain_graph=True)

    # Each builder returns (what runs, the function to time) for one spec.
    def elementwise(s):
        dt = dtypes[s["dtype"]]
        shapes = s["shapes"]
        op = s["op"]
        x = rand(*shapes[0], dtype=dt)
        if op == "copy":
            y = torch.empty_like(x)
            return "Tensor.copy_", lambda: y.copy_(x)
        if op == "transpose":
            src = rand(shapes[0][1], shapes[0][0], dtype=dt)
            y = torch.empty(*shapes[0], dtype=dt, device=dev)
            return "Tensor.copy_ of a transpose", lambda: y.copy_(src.t())
        if op == "cast_bf16":
            y = torch.empty(x.shape, dtype=torch.bfloat16, device=dev)
            return "Tensor.copy_ (cast)", lambda: y.copy_(x)
        if op == "exp":
            y = torch.empty_like(x)
            return "torch.exp", lambda: torch.exp(x, out=y)
        if op == "add":
            b = rand(*shapes[1], dtype=dt)
            y = torch.empty_like(x)
            return "torch.add", lambda: torch.add(x, b, out=y)
        if op == "sum":
            return "torch.sum", lambda: torch.sum(x, dim=-1)
        if op == "softmax":
            return "torch.softmax", lambda: torch.softmax(x, dim=-1)
        if op == "rope":  # the rotate-half form, composed, cos and sin broadcast over the heads
            T, _, D = shapes[0]
            cos, sin = rand(T, 1, D, dtype=dt), rand(T, 1, D, dtype=dt)
            rotate_half = lambda t: torch.cat((-t[..., D // 2:], t[..., : D // 2]), dim=-1)
            return "RoPE composed (x cos + rotate_half(x) sin)", lambda: x * cos + rotate_half(x) * sin
        if op in ("swiglu", "swiglu_backward"):
            bwd = op == "swiglu_backward"
            a, b = rand(*shapes[0], dtype=dt, grad=bwd), rand(*shapes[0], dtype=dt, grad=bwd)
            if not bwd:
                return "F.silu(a) * b", lambda: F.silu(a) * b
            y = F.silu(a) * b
            return "F.silu(a) * b backward", grad_of(y, (a, b), rand(*shapes[0], dtype=dt))
        if op == "index_select":
            idx = torch.randint(0, shapes[0][0], (shapes[1][0],), device=dev)
            return "torch.index_select", lambda: torch.index_select(x, 0, idx)
        return None

    def matmul(s):
        dt = dtypes[s["dtype"]]
        B, M, N, K = s["B"], s["M"], s["N"], s["K"]
        a = rand(B, M, K, dtype=dt)
        b = rand(B, N, K, dtype=dt).transpose(1, 2) if s["transposed_b"] else rand(B, K, N, dtype=dt)
        out = torch.empty(B, M, N, dtype=dt, device=dev)
        return "torch.matmul (cuBLAS)", lambda: torch.matmul(a, b, out=out)

    def linear_gelu(s):  # cuBLAS GEMM, then PyTorch's own bias and gelu passes
        dt = dtypes[s["dtype"]]
        x, w, b = rand(s["R"], s["K"], dtype=dt), rand(s["N"], s["K"], dtype=dt), rand(s["N"], dtype=dt)
        return "gelu(F.linear) (cuBLAS)", lambda: torch.nn.functional.gelu(torch.nn.functional.linear(x, w, b))

    def conv2d(s):
        dt = dtypes[s["dtype"]]
        N, C, H, W, O, k, st, pad = s["N"], s["C"], s["H"], s["W"], s["O"], s["k"], s["stride"], s["pad"]
        x, w, bias = rand(N, C, H, W, dtype=dt), rand(O, C, k, k, dtype=dt), rand(O, dtype=dt)
        if s["pass"] == "fwd":
            return "F.conv2d (cuDNN)", lambda: F.conv2d(x, w, bias, st, pad)
        gy = rand(*F.conv2d(x, w, None, st, pad).shape, dtype=dt)
        mask = [True, False, False] if s["pass"] == "bwd_data" else [False, True, True]
        return "aten.convolution_backward (cuDNN)", lambda: torch.ops.aten.convolution_backward(
            gy, x, w, [O], [st, st], [pad, pad], [1, 1], False, [0, 0], 1, mask)

    def attention(s):
        dt = dtypes[s["dtype"]]
        B, H, Lq, Lk, D, causal = s["B"], s["H"], s["Lq"], s["Lk"], s["D"], s["causal"]
        bwd = s["pass"] == "bwd"
        q, k, v = rand(B, H, Lq, D, dtype=dt, grad=bwd), rand(B, H, Lk, D, dtype=dt, grad=bwd), rand(B, H, Lk, D, dtype=dt, grad=bwd)
        if not bwd:
            return "F.scaled_dot_product_attention", lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        return "F.scaled_dot_product_attention backward", grad_of(out, (q, k, v), rand(*out.shape, dtype=dt))

    def norm(s):
        dt = dtypes[s["dtype"]]
        N, D, bwd, rms = s["N"], s["D"], s["pass"] == "bwd", s["op"] == "rmsnorm"
        x, w, b = rand(N, D, dtype=dt, grad=bwd), rand(D, dtype=dt, grad=bwd), rand(D, dtype=dt, grad=bwd)
        if not rms:
            fn, name = (lambda: F.layer_norm(x, (D,), w, b, 1e-5)), "F.layer_norm"
        elif hasattr(F, "rms_norm"):
            fn, name = (lambda: F.rms_norm(x, (D,), w, 1e-5)), "F.rms_norm"
        else:  # PyTorch before 2.4: the composed form
            fn, name = (lambda: x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * w), "RMSNorm composed"
        if not bwd:
            return name, fn
        y = fn()
        return name + " backward", grad_of(y, (x, w) if rms else (x, w, b), rand(N, D, dtype=dt))

    def cross_entropy(s):
        dt = dtypes[s["dtype"]]
        N, V, bwd = s["N"], s["V"], s["pass"] == "bwd"
        logits, targets = rand(N, V, dtype=dt, grad=bwd), torch.randint(0, V, (N,), device=dev)
        fn = lambda: F.cross_entropy(logits, targets, reduction="none", ignore_index=s["ignore"], label_smoothing=s["smoothing"])
        if not bwd:
            return "F.cross_entropy", fn
        loss = fn()
        return "F.cross_entropy backward", grad_of(loss, (logits,), rand(N, dtype=dt))

    def adamw(s):
        p = torch.nn.Parameter(rand(s["numel"]))
        p.grad = rand(s["numel"])
        opt = torch.optim.AdamW([p], lr=1e-3, weight_decay=0.01, fused=True)
        return "torch.optim.AdamW(fused=True)", opt.step

    builders = {"matmul": matmul, "linear_gelu": linear_gelu, "conv2d": conv2d, "attention": attention, "rmsnorm": norm, "layernorm": norm,
                "cross_entropy": cross_entropy, "adamw": adamw}
    specs = {} if on_cpu else {spec_key(COMPUTE_REFERENCE): COMPUTE_REFERENCE}  # a GPU figure
    with open(sys.argv[1]) as rows:
        for line in rows:
            row = json.loads(line)
            if row.get("spec") and row.get("timed"):  # the small check-only cases are not timed
                specs.setdefault(spec_key(row["spec"]), row["spec"])
    where = "the CPU" if on_cpu else torch.cuda.get_device_name()
    print(f"torch_ref: PyTorch {torch.__version__} on {where}: {len(specs)} cases", file=sys.stderr)
    for key, spec in specs.items():
        try:
            built = builders.get(spec["op"], elementwise)(spec)
            if built is None:
                continue
            impl, fn = built
            ms = time_ms(fn)
            print(json.dumps({"key": key, "ms": ms, "impl": impl}), flush=True)
        except Exception as e:  # one case PyTorch cannot run must not lose the others
            print(json.dumps({"key": key, "ms": None, "impl": f"error: {type(e).__name__}: {e}"}), flush=True)
        if not on_cpu:
            torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
