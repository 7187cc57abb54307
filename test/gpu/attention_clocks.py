#!/usr/bin/env python3
"""The sm90 attention kernel's rate beside the SM clock and power it ran at, on a GPU host.

A GPU under sustained tensor-core load runs at the clock its power limit allows, not its boost
clock, so a rate alone mixes the kernel's efficiency with the clock. For each causal shape the
kernel runs for about 3 s (through the addon, as attention_check.py runs it) while nvidia-smi
samples the SM clock and power every 20 ms; cuBLAS's large bf16 GEMM (torch.matmul) runs the
same way beside it. Each rate is also given per multiprocessor per clock, against Hopper's dense
bf16 tensor-core rate of 4096 FLOP per multiprocessor per clock (989 TFLOP/s at 1830 MHz on 132).

usage: python3 test/gpu/attention_clocks.py   (writes attention-clocks.json and .md to $OUT)
"""
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import attention_check as ac  # noqa: E402  (the addon's attention call and its runner)

HQ, HKV, D = 32, 8, 128
TENSOR_FLOP_PER_SM_CLOCK = 4096
RUN_S = 3.0


class Sampler:
    """nvidia-smi in the background: (SM MHz, W, busy %) every 20 ms until stopped."""

    def __enter__(self):
        self.file = tempfile.NamedTemporaryFile("w+", suffix=".csv")
        self.proc = subprocess.Popen(["nvidia-smi", "-i", "0", "--query-gpu=clocks.sm,power.draw,utilization.gpu", "--format=csv,noheader,nounits", "-lms", "20"],
                                     stdout=self.file, stderr=subprocess.DEVNULL)
        time.sleep(0.3)
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait()
        self.file.seek(0)
        self.samples = []
        for line in self.file.read().splitlines():
            try:
                mhz, watts, busy = (float(x) for x in line.split(","))
                self.samples.append((mhz, watts, busy))
            except ValueError:
                pass

    def busy(self):
        """Samples while a kernel ran nearly all the time (not the setup around it)."""
        return [s for s in self.samples if s[2] >= 95]


def summary(name, flops, ms, sampler, sms):
    busy = sampler.busy()
    mhz = statistics.median(s[0] for s in busy) if busy else None
    watts = statistics.median(s[1] for s in busy) if busy else None
    tflops = flops / ms / 1e9
    per_clock = tflops * 1e12 / (sms * mhz * 1e6) if mhz else None
    return {"shape": name, "ms": ms, "tflops": tflops, "sm_mhz": mhz, "watts": watts, "samples": len(busy),
            "flop_per_sm_clock": per_clock, "of_tensor_peak": per_clock / TENSOR_FLOP_PER_SM_CLOCK if per_clock else None}


def attention_row(name, tokens, sms):
    q = ac.rand(tokens, HQ * D)
    k, v = ac.rand(tokens, HKV * D), ac.rand(tokens, HKV * D)
    segs = [(k, v, 0, tokens, True)]
    flops = ac.flops(tokens, 0, tokens, HQ, D)
    iterations = max(10, int(RUN_S / (flops / 550e12)))
    with Sampler() as s:
        answer = ac.run_ok([ac.attention_call(q, segs, HQ, HKV, D, ac.SM90, iterations=iterations, keep=[])])[0]
    if answer["kernel"] != "sm90":
        raise RuntimeError(f"asked for the sm90 kernel, the addon ran {answer['kernel']}")
    del q, k, v, segs
    torch.cuda.empty_cache()
    return summary(name, flops, answer["medianMs"], s, sms)


def gemm_row(sms, n=8192):
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    torch.matmul(a, b)
    torch.cuda.synchronize()
    flops = 2.0 * n ** 3
    times = []
    with Sampler() as s:
        end = time.time() + RUN_S
        while time.time() < end:
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(10):
                torch.matmul(a, b)
            stop.record()
            stop.synchronize()
            times.append(start.elapsed_time(stop) / 10)
    return summary(f"cuBLAS GEMM {n}^3 bf16", flops, statistics.median(times), s, sms)


def main():
    props = torch.cuda.get_device_properties(0)
    sms = props.multi_processor_count
    rows = [gemm_row(sms)]
    for tokens in [8192, 16384, 32768, 131072]:
        rows.append(attention_row(f"apb sm90 causal {tokens // 1024}K", tokens, sms))
        print(json.dumps(rows[-1]))
    report = {"date": datetime.date.today().isoformat(), "gpu": props.name, "multiprocessors": sms, "rows": rows}
    out = os.environ.get("OUT", ".")
    with open(os.path.join(out, "attention-clocks.json"), "w") as f:
        json.dump(report, f, indent=2)
    fmt = lambda x, p=0: "n/a" if x is None else f"{x:.{p}f}"
    lines = [f"# Attention rate and the clock it ran at ({report['date']}, {props.name})", "",
             f"32/8 heads, head dim 128; each shape run for about {RUN_S:.0f} s; SM clock and power: medians of nvidia-smi's 20 ms samples while the GPU was busy.", "",
             "| work | ms | TFLOP/s | SM MHz | W | FLOP per SM per clock | of the tensor cores' dense rate |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['shape']} | {fmt(r['ms'], 3)} | {fmt(r['tflops'])} | {fmt(r['sm_mhz'])} | {fmt(r['watts'])} | {fmt(r['flop_per_sm_clock'])} | {fmt(100 * r['of_tensor_peak'] if r['of_tensor_peak'] else None)}% |")
    with open(os.path.join(out, "attention-clocks.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
