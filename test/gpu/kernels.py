"""Running apb's kernels from the Python GPU checks (attention_check.py, ops_check.py).

The kernels are launched only by the Rust launchers (crates/apb-cuda), which Python reaches
through the Node addon's runKernel (@apb/native/testing); the references are computed here
with PyTorch. The two processes share only the file system, so a batch of calls travels as
files: each input tensor's raw little-endian bytes and a manifest.json, in a fresh temp dir
(under $TMPDIR); run_kernels.mjs runs the batch in one Node process and writes every tensor
the addon returns, and result.json. This module reads them back onto the GPU and deletes
the files.

    results = run([dict(kernel="rms_norm", params={"eps": 1e-5}, tensors={"x": x, "w": w})])
    results[0]["tensors"]["out"]  # a flat cuda tensor; results[0]["kernel"], ["gpu"], ["medianMs"]

A call may also give iterations (timed launches after the checked one; their median comes
back as medianMs) and keep (the names of the returned tensors to read back; default all,
[] for a benchmark that needs none). A call the addon refused comes back as
{"error": {"code", "message", "path"}} without stopping the batch.

Tensors: bfloat16 (bf16), float32 (f32), float64 (f64); integer tensors are written as u32
(values taken mod 2^32, so int32 -1 is 2^32 - 1) and come back as int64.
"""
import json
import os
import shutil
import subprocess
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
# In the bundle this file is <ROOT>/test/gpu/kernels.py and the bundled node is <ROOT>/bin/node.
ROOT = os.path.dirname(os.path.dirname(HERE))
NODE = os.path.join(ROOT, "bin", "node") if os.path.isfile(os.path.join(ROOT, "bin", "node")) else "node"
RUNNER = os.path.join(HERE, "run_kernels.mjs")

FLOATS = {torch.bfloat16: "bf16", torch.float32: "f32", torch.float64: "f64"}
INTEGERS = (torch.int32, torch.int64, torch.uint32)
# The dtype of each write-only output (by name); every other output is bf16.
OUTPUT_DTYPES = {"lse": torch.float32, "scores": torch.float32, "picked": torch.int64}
# The inputs each kernel writes in place; every other input must come back unchanged.
IN_PLACE = {"add_rms_norm": {"residual"}, "rope": {"x"}, "silu": {"x"}, "add": {"x"}, "add_bias": {"x"}}


class KernelError(RuntimeError):
    """A call the addon refused: .error is its {code, message, path}."""

    def __init__(self, kernel, error):
        super().__init__(f"{kernel}: {error.get('code')}: {error.get('message')} (at {error.get('path')})")
        self.error = error


def _write(t, path):
    """Writes t's elements as raw little-endian bytes; returns (dtype name, element count)."""
    t = t.detach().contiguous().cpu()
    if t.dtype in FLOATS:
        t.reshape(-1).view(torch.uint8).numpy().tofile(path)
        return FLOATS[t.dtype], t.numel()
    if t.dtype in INTEGERS:
        (t.reshape(-1).to(torch.int64) & 0xFFFFFFFF).numpy().astype("<u4").tofile(path)
        return "u32", t.numel()
    raise TypeError(f"no file format for {t.dtype}")


def _read(path, dtype):
    """A file written by run_kernels.mjs as a flat cuda tensor of `dtype` (u32 as int64)."""
    if dtype in INTEGERS:
        return torch.from_numpy(np.fromfile(path, dtype="<u4").astype(np.int64)).cuda()
    raw = torch.from_numpy(np.fromfile(path, dtype=np.uint8))
    return raw.view(dtype).cuda()


def run(calls):
    """Runs the calls in order in one Node process; returns one result per call (see above)."""
    folder = tempfile.mkdtemp(prefix="apb-kernels-")
    try:
        files = {}  # id(tensor) -> its file entry: a tensor given to several calls is written once
        manifest = []
        for i, c in enumerate(calls):
            entries = {}
            for name, t in c["tensors"].items():
                if id(t) not in files:
                    path = os.path.join(folder, f"in-{len(files)}.bin")
                    dtype, elements = _write(t, path)
                    files[id(t)] = {"file": path, "dtype": dtype, "elements": elements}
                entries[name] = files[id(t)]
            manifest.append({"kernel": c["kernel"], "params": c.get("params", {}), "tensors": entries,
                             "iterations": int(c.get("iterations", 0)), "keep": c.get("keep")})
        with open(os.path.join(folder, "manifest.json"), "w") as f:
            json.dump({"calls": manifest}, f)
        # stdout is kept for the error message; stderr goes straight to ours.
        p = subprocess.run([NODE, RUNNER, os.path.join(folder, "manifest.json")], stdout=subprocess.PIPE, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"{NODE} {RUNNER} exited with {p.returncode}:\n{p.stdout}")
        with open(os.path.join(folder, "result.json")) as f:
            answers = json.load(f)["calls"]
        results = []
        for c, a in zip(calls, answers):
            if "error" in a:
                results.append({"error": a["error"]})
                continue
            tensors = {}
            for name, path in a["tensors"].items():
                given = c["tensors"].get(name)
                if given is None:
                    tensors[name] = _read(path, OUTPUT_DTYPES.get(name, torch.bfloat16))
                else:  # an input: back in its own dtype and shape
                    tensors[name] = _read(path, given.dtype).view(given.shape)
            results.append({"gpu": a["gpu"], "kernel": a["kernel"], "medianMs": a.get("medianMs"), "tensors": tensors})
        return results
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_ok(calls):
    """run(), raising KernelError for the first call the addon refused."""
    results = run(calls)
    for c, r in zip(calls, results):
        if "error" in r:
            raise KernelError(c["kernel"], r["error"])
    return results


def inputs_unchanged(call, result):
    """Whether every input the kernel only reads came back bit for bit as it was given (the
    addon allocates the outputs to size, so this is what "nothing written outside the output"
    becomes)."""
    written = IN_PLACE.get(call["kernel"], set())
    for name, t in call["tensors"].items():
        if name in written:
            continue
        back = result["tensors"].get(name)
        if back is None or back.numel() != t.numel():
            return False
        if t.dtype in INTEGERS:
            same = torch.equal(back.reshape(-1), t.reshape(-1).to(torch.int64).to(back.device) & 0xFFFFFFFF)
        else:
            same = torch.equal(back.reshape(-1).view(torch.uint8), t.detach().contiguous().reshape(-1).view(torch.uint8).to(back.device))
        if not same:
            return False
    return True


def finish(name, report, markdown_text):
    """Writes report as $OUT/<name>.json and the table as $OUT/<name>.md, prints the table
    and exits 1 if any check failed."""
    out = os.environ.get("OUT", ".")
    with open(os.path.join(out, f"{name}.json"), "w") as f:
        json.dump(report, f, indent=2)
    with open(os.path.join(out, f"{name}.md"), "w") as f:
        f.write(markdown_text)
    print(markdown_text)
    failed = [c for c in report.get("checks", []) if not c["pass"]]
    raise SystemExit(1 if failed else 0)

