"""torch_ref.py: the PyTorch CPU reference for bench/ (bench/ref/torch.ts runs it).

Reads a JSON list of {"key", "spec"} on stdin (bench/harness.ts's RefSpec: op, input shapes,
params) and prints one JSON object {key: seconds per call} on stdout, timing the same shapes as
our bench, in f32 on `--threads` threads (torch.set_num_threads). Each case gets one untimed
call, then repeats for about --seconds (at least 3 calls); the figure is the mean per call.
Specs it does not know are skipped (their keys are absent from the answer).

Ops (params in brackets):
  matmul / bmm         [ta, tb: the operand is stored transposed and passed as a .transpose view;
                        dtype "bf16": both operands bf16]
  conv2d               [stride, padding, backward: forward+backward of x, weight and bias]
  attention            q, k, v [B, H, L, D]; [causal, backward] (torch 1.13 has no fused SDPA:
                       softmax(q k^T / sqrt(D) + mask) v written out, as a user would)
  rms_norm             x [R, C], weight [C]; [backward]
  cross_entropy        logits [R, V]; [backward]
  adamw                one parameter tensor per input shape: one AdamW step over all of them,
                       gradients set; [lr, weight_decay] (torch's defaults otherwise)
  llama_step           [vocab, d_model, layers, heads, ffn, seq, batch]: forward, cross-entropy,
                       backward and AdamW of a LLaMA-style decoder (RMSNorm, RoPE, causal
                       attention, SwiGLU, untied head)
  vit_fwd_bwd          [image, patch, width, layers, heads, mlp, batch]: a pre-norm ViT
                       (patch conv, CLS token, learned positions, GELU MLP), forward + backward
                       of the mean of its last hidden state

Run as the bench does (see bench/ref/torch.ts for the environment it sets):
  echo '[{"key":"m","spec":{"op":"matmul","inputs":[[512,512],[512,512]]}}]' | python3 torch_ref.py --threads 2
"""
import argparse
import json
import math
import sys
import time

import torch
import torch.nn.functional as F


def timed(fn, seconds):
    fn()
    reps, t0 = 0, time.perf_counter()
    t = t0
    while reps < 3 or t - t0 < seconds:
        fn()
        reps += 1
        t = time.perf_counter()
    return (t - t0) / reps


def randn(*shape, grad=False):
    return torch.randn(*shape, dtype=torch.float32, requires_grad=grad)


def stored(shape, transposed):
    """A [.., r, c] operand, stored as [.., c, r] and viewed transposed when asked."""
    if not transposed:
        return randn(*shape)
    return randn(*shape[:-2], shape[-1], shape[-2]).transpose(-1, -2)


def case_matmul(spec):
    p = spec.get("params", {})
    a = stored(spec["inputs"][0], p.get("ta", False))
    b = stored(spec["inputs"][1], p.get("tb", False))
    if p.get("dtype") == "bf16":
        a, b = a.bfloat16(), b.bfloat16()
    return lambda: torch.matmul(a, b)


def case_conv2d(spec):
    p = spec.get("params", {})
    xs, ws = spec["inputs"][0], spec["inputs"][1]
    back = p.get("backward", False)
    x, w, bias = randn(*xs, grad=back), randn(*ws, grad=back), randn(ws[0], grad=back)
    stride, padding = p.get("stride", 1), p.get("padding", 0)
    if not back:
        return lambda: F.conv2d(x, w, bias, stride=stride, padding=padding)
    y = F.conv2d(x, w, bias, stride=stride, padding=padding)
    g = torch.randn_like(y)

    def step():
        x.grad = w.grad = bias.grad = None
        F.conv2d(x, w, bias, stride=stride, padding=padding).backward(g)
    return step


def attention(q, k, v, causal):
    s = q @ k.transpose(-1, -2) * (1.0 / math.sqrt(q.shape[-1]))
    if causal:
        L, S = q.shape[-2], k.shape[-2]
        s = s.masked_fill(torch.ones(L, S, dtype=torch.bool).triu(1), float("-inf"))
    return torch.softmax(s, -1) @ v


def case_attention(spec):
    p = spec.get("params", {})
    back, causal = p.get("backward", False), p.get("causal", False)
    q, k, v = (randn(*s, grad=back) for s in spec["inputs"][:3])
    if not back:
        return lambda: attention(q, k, v, causal)
    g = torch.randn_like(q[..., : v.shape[-1]])

    def step():
        q.grad = k.grad = v.grad = None
        attention(q, k, v, causal).backward(g)
    return step


def rms_norm(x, w, eps=1e-6):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def case_rms_norm(spec):
    p = spec.get("params", {})
    back = p.get("backward", False)
    x, w = randn(*spec["inputs"][0], grad=back), randn(*spec["inputs"][1], grad=back)
    if not back:
        return lambda: rms_norm(x, w)
    g = torch.randn_like(x)

    def step():
        x.grad = w.grad = None
        rms_norm(x, w).backward(g)
    return step


def case_cross_entropy(spec):
    p = spec.get("params", {})
    back = p.get("backward", False)
    rows, vocab = spec["inputs"][0]
    logits = randn(rows, vocab, grad=back)
    targets = torch.randint(0, vocab, (rows,))
    if not back:
        return lambda: F.cross_entropy(logits, targets)

    def step():
        logits.grad = None
        F.cross_entropy(logits, targets).backward()
    return step


def case_adamw(spec):
    p = spec.get("params", {})
    params = [torch.nn.Parameter(randn(*shape)) for shape in spec["inputs"]]
    for param in params:
        param.grad = torch.randn_like(param)
    opt = torch.optim.AdamW(params, lr=p.get("lr", 1e-3), weight_decay=p.get("weight_decay", 0.01))
    return opt.step


class LlamaBlock(torch.nn.Module):
    def __init__(self, d, heads, ffn):
        super().__init__()
        self.heads = heads
        self.n1, self.n2 = torch.nn.Parameter(torch.ones(d)), torch.nn.Parameter(torch.ones(d))
        self.q, self.k, self.v, self.o = (torch.nn.Linear(d, d, bias=False) for _ in range(4))
        self.gate, self.up = torch.nn.Linear(d, ffn, bias=False), torch.nn.Linear(d, ffn, bias=False)
        self.down = torch.nn.Linear(ffn, d, bias=False)

    def forward(self, x, cos, sin):
        B, L, D = x.shape
        h = rms_norm(x, self.n1)
        def split(t):
            return t.view(B, L, self.heads, D // self.heads).transpose(1, 2)
        q, k, v = split(self.q(h)), split(self.k(h)), split(self.v(h))
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        a = attention(q, k, v, True).transpose(1, 2).reshape(B, L, D)
        x = x + self.o(a)
        h = rms_norm(x, self.n2)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


def rope(x, cos, sin):
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], -1)
    return x * cos + rotated * sin


class Llama(torch.nn.Module):
    def __init__(self, vocab, d, layers, heads, ffn):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, d)
        self.blocks = torch.nn.ModuleList(LlamaBlock(d, heads, ffn) for _ in range(layers))
        self.norm = torch.nn.Parameter(torch.ones(d))
        self.head = torch.nn.Linear(d, vocab, bias=False)
        self.hd = d // heads

    def forward(self, ids):
        L = ids.shape[1]
        inv = 1.0 / (10000 ** (torch.arange(0, self.hd, 2).float() / self.hd))
        freqs = torch.outer(torch.arange(L).float(), inv)
        emb = torch.cat([freqs, freqs], -1)
        cos, sin = emb.cos(), emb.sin()
        x = self.embed(ids)
        for b in self.blocks:
            x = b(x, cos, sin)
        return self.head(rms_norm(x, self.norm))


def case_llama_step(spec):
    p = spec["params"]
    model = Llama(p["vocab"], p["d_model"], p["layers"], p["heads"], p["ffn"])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(0, p["vocab"], (p["batch"], p["seq"]))
    targets = torch.randint(0, p["vocab"], (p["batch"], p["seq"]))

    def step():
        opt.zero_grad(set_to_none=True)
        logits = model(ids)
        F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1)).backward()
        opt.step()
    return step


class VitBlock(torch.nn.Module):
    def __init__(self, d, heads, mlp):
        super().__init__()
        self.heads = heads
        self.n1, self.n2 = torch.nn.LayerNorm(d), torch.nn.LayerNorm(d)
        self.qkv, self.proj = torch.nn.Linear(d, 3 * d), torch.nn.Linear(d, d)
        self.fc1, self.fc2 = torch.nn.Linear(d, mlp), torch.nn.Linear(mlp, d)

    def forward(self, x):
        B, L, D = x.shape
        q, k, v = self.qkv(self.n1(x)).view(B, L, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        x = x + self.proj(attention(q, k, v, False).transpose(1, 2).reshape(B, L, D))
        return x + self.fc2(F.gelu(self.fc1(self.n2(x))))


class Vit(torch.nn.Module):
    def __init__(self, image, patch, d, layers, heads, mlp):
        super().__init__()
        self.patch = torch.nn.Conv2d(3, d, patch, stride=patch)
        self.cls = torch.nn.Parameter(torch.zeros(1, 1, d))
        self.pos = torch.nn.Parameter(torch.zeros(1, (image // patch) ** 2 + 1, d))
        self.blocks = torch.nn.ModuleList(VitBlock(d, heads, mlp) for _ in range(layers))

    def forward(self, pixels):
        x = self.patch(pixels).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos
        for b in self.blocks:
            x = b(x)
        return x


def case_vit_fwd_bwd(spec):
    p = spec["params"]
    model = Vit(p["image"], p["patch"], p["width"], p["layers"], p["heads"], p["mlp"])
    pixels = randn(p["batch"], 3, p["image"], p["image"])

    def step():
        model.zero_grad(set_to_none=True)
        model(pixels).mean().backward()
    return step


CASES = {
    "matmul": case_matmul, "bmm": case_matmul, "conv2d": case_conv2d, "attention": case_attention,
    "rms_norm": case_rms_norm, "cross_entropy": case_cross_entropy, "adamw": case_adamw,
    "llama_step": case_llama_step, "vit_fwd_bwd": case_vit_fwd_bwd,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--seconds", type=float, default=1.0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    out = {}
    for item in json.load(sys.stdin):
        make = CASES.get(item["spec"]["op"])
        if make is None:
            continue
        out[item["key"]] = timed(make(item["spec"]), args.seconds)
        print(f"  torch {item['key']}: {out[item['key']] * 1e3:.3f} ms", file=sys.stderr)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
