"""What a bf16 GEMM reaches on this GPU, cold and sustained, through PyTorch (cuBLASLt's own
heuristics): the peer figure for apb's FFN phase.

Times the GEMMs of a Llama-3.1-8B layer (q/o [4096x4096], k/v [1024x4096], gate+up stacked
[28672x4096], down [4096x14336]) at 8K, 20K and 128K rows, a square 8192^3 GEMM before and
after, and the FFN of a 128K-token prefill as a model runs it (32 layers of gate+up, SiLU-
multiply, down, back to back). A GPU held at full load for seconds lowers its clocks to stay
within its power limit, so the sustained figures are what a long prefill gets.

usage: python3 test/gpu/gemm_sustained.py   (writes gemm-sustained.json and .md to $OUT or .)
"""
import datetime
import json
import os
import time

import torch

OUT = os.environ.get("OUT", ".")


def gemm(m, n, k, reps):
    a = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ w.t()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        a @ w.t()
    end.record()
    torch.cuda.synchronize()
    ms = start.elapsed_time(end) / reps
    return {"what": f"[{m}x{k}] x [{n}x{k}]^T", "rows": m, "ms": ms, "tflops": 2 * m * n * k / ms / 1e9}


def ffn_prefill(rows=131072, layers=32):
    x = torch.randn(rows, 4096, device="cuda", dtype=torch.bfloat16)
    gate_up = torch.randn(28672, 4096, device="cuda", dtype=torch.bfloat16)
    down = torch.randn(4096, 14336, device="cuda", dtype=torch.bfloat16)
    torch.cuda.synchronize()
    t = time.time()
    for _ in range(layers):
        gu = x @ gate_up.t()
        h = torch.nn.functional.silu(gu[:, :14336]) * gu[:, 14336:]
        h @ down.t()
    torch.cuda.synchronize()
    ms = (time.time() - t) * 1e3
    flops = layers * 2 * rows * 4096 * 14336 * 3
    return {"what": f"FFN of a {rows}-token prefill, {layers} layers (GEMMs + SiLU-multiply)", "rows": rows, "ms": ms, "tflops": flops / ms / 1e9}


def main():
    rows = [gemm(8192, 8192, 8192, 30) | {"when": "cold"}]
    for m in [8192, 20480, 131072]:
        for n, k in [(4096, 4096), (1024, 4096), (28672, 4096), (4096, 14336)]:
            rows.append(gemm(m, n, k, 10 if m > 50000 else 30) | {"when": "in sequence"})
    rows.append(ffn_prefill() | {"when": "sustained"})
    rows.append(gemm(8192, 8192, 8192, 30) | {"when": "after"})
    for r in rows:
        print(json.dumps(r), flush=True)
    result = {"date": datetime.date.today().isoformat(), "gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "rows": rows}
    with open(os.path.join(OUT, "gemm-sustained.json"), "w") as f:
        json.dump(result, f, indent=2)
    lines = [f"# bf16 GEMMs through PyTorch (cuBLASLt), cold and sustained ({result['date']}, {result['gpu']}, torch {result['torch']})", "",
             "| GEMM | when | ms | TFLOP/s |", "|---|---|---:|---:|"]
    lines += [f"| {r['what']} | {r['when']} | {r['ms']:.2f} | {r['tflops']:.0f} |" for r in rows]
    lines += ["", "Command: `python3 test/gpu/gemm_sustained.py`."]
    with open(os.path.join(OUT, "gemm-sustained.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
