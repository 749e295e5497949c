"""report.py: the one table of a bench/gpu/run.sh run, from the drivers' rows and PyTorch's times.

Reads the drivers' rows (JSON lines, bench/gpu/bench.h) and, when present, torch_ref.py's output;
prints the table as markdown and writes it (--md) with the same numbers as JSON (--json). Per row:
the check (ok with the worst relative error / its tolerance, FAIL, no kernel, unsupported), the
median time, the rate (TFLOP/s for rows that count FLOPs, TB/s of compulsory bytes for the rest),
% of the peak measured in the same run (the device copy's TB/s for memory-bound rows; cuBLAS's
bf16 4096^3 matmul for FLOP rows, with the H200's nominal dense bf16 figure beside it), PyTorch's
time on the same spec and `vs PyTorch` = PyTorch's time / ours (above 1: ours is faster).

Standard library only. Exit status 1 if any row failed its check.

usage: python3 bench/gpu/report.py ROWS.jsonl [--torch TORCH.jsonl] [--md OUT.md] [--json OUT.json]
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_ref import COMPUTE_REFERENCE, spec_key  # noqa: E402  (torch itself is imported only by torch_ref.main)

NOMINAL_BF16_TFLOPS = 989.0  # H100/H200 SXM dense bf16 by the datasheet
NOMINAL_HBM_TBPS = 4.8  # H200 HBM3e by the datasheet


def load_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def fmt(x, digits=3):
    if x is None:
        return ""
    return f"{x:.{digits}g}" if abs(x) < 1000 else f"{x:.0f}"


def build(rows, torch_rows):
    torch_by_key = {t["key"]: t for t in torch_rows}
    copy = next((r for r in rows if r.get("role") == "bandwidth" and r["status"] == "ok" and r["ms"] > 0), None)
    copy_tbps = copy["bytes"] / copy["ms"] * 1e-9 if copy else None
    cublas = torch_by_key.get(spec_key(COMPUTE_REFERENCE))
    cublas_tflops = 2 * 4096**3 / cublas["ms"] * 1e-9 if cublas and cublas.get("ms") else None
    torch_copy = torch_by_key.get(spec_key(copy["spec"])) if copy else None
    peaks = {
        "device": rows[0]["device"] if rows else "",
        "copy_tbps": copy_tbps,
        "torch_copy_tbps": copy["bytes"] / torch_copy["ms"] * 1e-9 if torch_copy and torch_copy.get("ms") else None,
        "cublas_bf16_tflops": cublas_tflops,
        "nominal_bf16_tflops": NOMINAL_BF16_TFLOPS,
        "nominal_hbm_tbps": NOMINAL_HBM_TBPS,
    }
    table = []
    for r in rows:
        ms = r["ms"] or None
        t = torch_by_key.get(spec_key(r["spec"])) if r.get("spec") else None
        torch_ms = t.get("ms") if t else None
        out = {k: r[k] for k in ("family", "kernel", "dtype", "shape", "status", "err", "tol", "notes", "flops", "bytes", "repeats")}
        out.update(ms=ms, torch_ms=torch_ms, torch_impl=t["impl"] if t else None, tflops=None, tbps=None, pct_peak=None,
                   pct_nominal=None, vs_torch=None)
        if ms and r["flops"] > 0:
            out["tflops"] = r["flops"] / ms * 1e-9
            out["pct_peak"] = 100 * out["tflops"] / cublas_tflops if cublas_tflops else None
            out["pct_nominal"] = 100 * out["tflops"] / NOMINAL_BF16_TFLOPS
        elif ms and r["bytes"] > 0:
            out["tbps"] = r["bytes"] / ms * 1e-9
            out["pct_peak"] = 100 * out["tbps"] / copy_tbps if copy_tbps else None
        if ms and torch_ms:
            out["vs_torch"] = torch_ms / ms
        table.append(out)
    return peaks, table


def check_cell(r):
    if r["status"] == "ok":
        return "ok (exact)" if r["tol"] == 0 else f"ok {r['err']:.1e}/{r['tol']:.0e}"
    if r["status"] in ("FAIL", "unsupported"):
        return f"{r['status']}: {r['notes']}"
    return r["status"]


def measured(x, unit):
    return f"{fmt(x)} {unit}" if x else "not measured"


def markdown(peaks, table):
    lines = [
        f"Device: {peaks['device']}",
        "",
        f"- measured copy bandwidth (device-to-device memcpy, read + write): {measured(peaks['copy_tbps'], 'TB/s')}"
        + (f" (PyTorch's copy: {fmt(peaks['torch_copy_tbps'])} TB/s)" if peaks["torch_copy_tbps"] else "")
        + f"; nominal HBM3e {peaks['nominal_hbm_tbps']} TB/s",
        f"- measured compute reference (PyTorch cuBLAS bf16 4096^3 matmul): {measured(peaks['cublas_bf16_tflops'], 'TFLOP/s')}"
        + f"; nominal dense bf16 {peaks['nominal_bf16_tflops']:.0f} TFLOP/s",
        "- % peak: of the copy bandwidth for TB/s rows, of the cuBLAS rate for TFLOP/s rows (% nominal: of 989 TFLOP/s)",
        "- vs PyTorch: PyTorch's time / ours on the same shapes (above 1: ours is faster)",
        "",
        "| kernel | dtype | shape | check | time (ms) | TFLOP/s | TB/s | % peak | % nominal | PyTorch (ms) | vs PyTorch |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in table:
        cells = [r["kernel"], r["dtype"], r["shape"], check_cell(r).replace("|", "/"), fmt(r["ms"], 4), fmt(r["tflops"]),
                 fmt(r["tbps"]), fmt(r["pct_peak"]), fmt(r["pct_nominal"]), fmt(r["torch_ms"], 4), fmt(r["vs_torch"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_atomically(path, text):
    """Writes text to path through a temporary file and a rename: a crash leaves the old file."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("rows")
    ap.add_argument("--torch")
    ap.add_argument("--md")
    ap.add_argument("--json")
    args = ap.parse_args()
    rows = load_jsonl(args.rows)
    torch_rows = load_jsonl(args.torch) if args.torch and os.path.exists(args.torch) else []
    peaks, table = build(rows, torch_rows)
    text = markdown(peaks, table)
    print(text, end="")
    if args.md:
        write_atomically(args.md, text)
    if args.json:
        write_atomically(args.json, json.dumps({"peaks": peaks, "rows": table}, indent=1))
    failed = [r for r in table if r["status"] == "FAIL"]
    print(f"{len(table) - len(failed)} rows ok or not applicable, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
