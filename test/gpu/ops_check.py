"""GPU checks and timings of cuda/ops.cu (embedding, RMSNorm, fused add + RMSNorm, RoPE,
SwiGLU, SiLU, adds, the query-aware passing score, the per-head gather), run on a GPU host
with PyTorch.

Every kernel runs through its Rust launcher (crates/apb-cuda), reached from here through the
Node addon's runKernel (kernels.py, run_kernels.mjs), on fresh random inputs made here
(seeded from the clock; the seed is printed); the addon fills every write-only output with
NaN before the launch. The outputs are compared with float64 references written here from
the CPU backend's semantics (crates/apb-engine/src/cpu), not from the kernels:
  - bf16 outputs: relative error ||out - ref|| / ||ref|| < 1e-2 (bf16 rounding alone is ~3e-3);
    copies and adds bit-exact; RoPE also element-wise within half a bf16 ulp (so a wrong
    angle at position 2^20 cannot hide in the norm);
  - fp32 scores: relative error < 1e-3; the LSE they are given comes from the attention
    kernel (as in the engine), its max abs error < 1e-3;
  - every output element written (no NaN left), and every input the kernel only reads back
    unchanged, bit for bit;
  - ids or indices out of range refused with an error (embedding, gather), not read.
Then times the heavy ones (GB/s; TFLOP/s for the scoring kernel): the addon's median of
event-timed launches.
Prints one JSON line per check, then markdown tables; writes ops.json and ops.md to $OUT
(or the current directory); exits 1 if any check fails.

usage: python3 test/gpu/ops_check.py [--checks-only] [--bench-only]
"""
import datetime
import json
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kernels import KernelError, finish, inputs_unchanged, run, run_ok  # noqa: E402

BF16_REL = 1e-2
F32_REL = 1e-3
LSE_ABS = 1e-3
# Timed launches per op (after the checked one); their median is reported.
ITERATIONS = 20


def call(kernel, params=None, iterations=0, keep=None, **tensors):
    """One runKernel call for kernels.run."""
    return dict(kernel=kernel, params=params or {}, tensors=tensors, iterations=iterations, keep=keep)


# ---- inputs and measures ------------------------------------------------------------------

def randn_bf16(*shape, scale=1.0):
    return (torch.randn(*shape, device="cuda") * scale).to(torch.bfloat16)


def rel_err(out, ref):
    ref = ref.double()
    return ((out.double() - ref).norm() / ref.norm().clamp_min(1e-300)).item()


def no_nan(t):
    return not bool(torch.isnan(t).any())


def refused(answer, codes):
    """Whether the addon refused the call with an error of one of `codes`."""
    return "error" in answer and answer["error"].get("code") in codes


def result(op, case, metric, err, limit, written=True, **extra):
    ok = bool(err <= limit) and bool(written) and all(v for k, v in extra.items() if k.endswith("_ok"))
    r = {"op": op, "case": case, "metric": metric, "err": err, "limit": limit, "written": bool(written), **extra, "pass": ok}
    print(json.dumps(r))
    return r


# ---- references (the CPU backend's semantics, in float64) ---------------------------------

def rms_norm_ref(x, w, eps):
    x = x.double()
    return x / torch.sqrt((x * x).mean(dim=-1, keepdim=True) + eps) * w.double()


def inv_freq(head_dim, theta, llama3=None):
    """rope.rs: base frequencies, with Llama 3.1's scaling (factor, low, high, original)."""
    base = [1.0 / theta ** (2.0 * i / head_dim) for i in range(head_dim // 2)]
    if llama3 is None:
        return base
    factor, low, high, original = llama3
    low_wavelen, high_wavelen = original / low, original / high
    out = []
    for f in base:
        wavelen = 2 * math.pi / f
        if wavelen < high_wavelen:
            out.append(f)
        elif wavelen > low_wavelen:
            out.append(f / factor)
        else:
            smooth = (original / wavelen - low) / (high - low)
            out.append((1 - smooth) * f / factor + smooth * f)
    return out


def rope_ref(x, heads, d, positions, freqs):
    """Rotate-half RoPE of x [rows][heads * d]; angles in float64, cos and sin rounded to fp32 as
    the CPU backend does. Returns (ref, per-element bound of half a bf16 ulp plus fp32 slack)."""
    rows, half = x.shape[0], d // 2
    xr = x.double().view(rows, heads, d)
    angle = positions.double()[:, None] * freqs[None, :]
    c = torch.cos(angle).float().double()[:, None, :]
    s = torch.sin(angle).float().double()[:, None, :]
    a, b = xr[..., :half], xr[..., half:]
    ref = torch.cat([a * c - b * s, b * c + a * s], dim=-1)
    slack = (a.abs() + b.abs()) * 2.0 ** -21
    bound = ref.abs() * 2.0 ** -8 + torch.cat([slack, slack], dim=-1) + 1e-30
    return ref.view(rows, heads * d), bound.view(rows, heads * d)


def silu_ref(g):
    g = g.double()
    return g / (1 + torch.exp(-g))


def bf16_add(x, y):
    """What an fp32 add rounded once to bf16 gives (torch rounds to nearest even)."""
    return (x.float() + y.float()).to(torch.bfloat16)


def scores_ref(q, k, q_heads, kv_heads, d):
    """(lse [rows][q_heads], scores [kv_heads][n]) in float64 (cpu/select.rs: query_scores)."""
    rows, n = q.shape[0], k.shape[0]
    group = q_heads // kv_heads
    qd = q.double().view(rows, q_heads, d)
    kd = k.double().view(n, kv_heads, d)
    lse = torch.empty(rows, q_heads, dtype=torch.float64, device=q.device)
    scores = torch.empty(kv_heads, n, dtype=torch.float64, device=q.device)
    for g in range(kv_heads):
        qg = qd[:, g * group:(g + 1) * group].reshape(rows * group, d)
        s = qg @ kd[:, g].T / math.sqrt(d)
        l = torch.logsumexp(s, dim=-1)
        lse[:, g * group:(g + 1) * group] = l.view(rows, group)
        scores[g] = torch.exp(s - l[:, None]).sum(dim=0)
        del s
    return lse, scores


# ---- checks -------------------------------------------------------------------------------
# Each check makes all its inputs, runs its calls in one Node process (kernels.run), then
# compares. The addon allocates every output to size and fills it with NaN first.

def check_embed():
    out = []
    cases = []
    for rows, hidden, vocab in [(1, 4096, 1000), (37, 4096, 5000), (300, 896, 1000), (37, 37, 100), (5, 4096, 300)]:
        table = randn_bf16(vocab, hidden)
        ids = torch.randint(0, vocab, (rows,), device="cuda", dtype=torch.int64)
        # The same ids with some out of range (2^32 - 1 included): that call must be refused.
        bad_ids = ids.clone()
        bad_at = torch.randperm(rows, device="cuda")[: max(1, rows // 10)]
        bad_values = torch.tensor([vocab, vocab + 7, 2 ** 32 - 1], device="cuda", dtype=torch.int64)
        bad_ids[bad_at] = bad_values[torch.arange(len(bad_at), device="cuda") % 3]
        cases.append((rows, hidden, vocab, len(bad_at), call("embed", {"hidden": hidden}, table=table, ids=ids),
                      call("embed", {"hidden": hidden}, table=table, ids=bad_ids)))
    answers = run([c for case in cases for c in case[4:]])
    for i, (rows, hidden, vocab, bad, c, bad_call) in enumerate(cases):
        a, refusal = answers[2 * i], answers[2 * i + 1]
        if "error" in a:
            raise KernelError("embed", a["error"])
        o = a["tensors"]["out"].view(rows, hidden)
        ref = c["tensors"]["table"][c["tensors"]["ids"]]
        err = (o.float() - ref.float()).abs().max().item() if no_nan(o) else float("inf")
        out.append(result("embed", f"{rows}x{hidden}, vocab {vocab}; with {bad} ids out of range: refused", "max abs diff (copy)", err, 0.0,
                          no_nan(o), inputs_unchanged_ok=inputs_unchanged(c, a), refused_ok=refused(refusal, {"INVALID_INPUT"}),
                          refusal=refusal.get("error")))
    return out


def check_rms_norm():
    out = []
    cases = [(1, 4096, 1e-5), (37, 4096, 1e-5), (37, 896, 1e-6), (5, 37, 1e-6), (3, 16384, 1e-5), (2, 20000, 1e-5), (9, 4096, 1e-5)]
    calls = []
    for rows, hidden, eps in cases:
        x = randn_bf16(rows, hidden, scale=3.0)
        w = (torch.rand(hidden, device="cuda") * 1.5 + 0.25).to(torch.bfloat16)
        calls.append(call("rms_norm", {"eps": eps}, x=x, w=w))
    for (rows, hidden, eps), c, a in zip(cases, calls, run_ok(calls)):
        o = a["tensors"]["out"].view(rows, hidden)
        ref = rms_norm_ref(c["tensors"]["x"], c["tensors"]["w"], eps)
        out.append(result("rms_norm", f"{rows}x{hidden}", "rel err", rel_err(o, ref), BF16_REL, no_nan(o), inputs_unchanged_ok=inputs_unchanged(c, a)))
    return out


def check_add_rms_norm():
    """residual += delta in place (rounded once to bf16, bit-exact), out = rms_norm(residual)."""
    out = []
    cases = [(1, 896), (37, 4096), (5, 37), (2, 20000), (3, 16384)]
    calls = [call("add_rms_norm", {"eps": 1e-5}, residual=randn_bf16(rows, hidden, scale=4.0), delta=randn_bf16(rows, hidden), w=randn_bf16(hidden))
             for rows, hidden in cases]
    for (rows, hidden), c, a in zip(cases, calls, run_ok(calls)):
        t = c["tensors"]
        ref_res = bf16_add(t["residual"], t["delta"])
        res, o = a["tensors"]["residual"], a["tensors"]["out"].view(rows, hidden)
        out.append(result("add_rms_norm", f"{rows}x{hidden}", "rel err", rel_err(o, rms_norm_ref(ref_res, t["w"], 1e-5)), BF16_REL,
                          no_nan(o), residual_exact_ok=bool(torch.equal(res.view(torch.int16), ref_res.view(torch.int16))),
                          inputs_unchanged_ok=inputs_unchanged(c, a)))
    return out


LLAMA3 = (8.0, 1.0, 4.0, 8192.0)


def check_rope():
    """In place on x [rows][heads * head_dim] (rows contiguous)."""
    out = []
    max_pos = 1048575
    cases = [
        # rows, heads, head_dim, theta, llama3 scaling, positions
        (37, 32, 128, 500000.0, LLAMA3, "random < 2^20"),
        (1, 8, 128, 500000.0, LLAMA3, "2^20 - 1"),
        (300, 8, 64, 500000.0, LLAMA3, "random < 2^20"),
        (33, 28, 128, 1000000.0, None, "0..32"),
        (5, 3, 80, 10000.0, None, "random < 2^20"),
        (5, 3, 36, 10000.0, None, "random < 2^20"),
    ]
    calls = []
    for rows, heads, d, theta, scaling, how in cases:
        if how == "0..32":
            pos = torch.arange(rows, device="cuda", dtype=torch.int64)
        elif how == "2^20 - 1":
            pos = torch.full((rows,), max_pos, device="cuda", dtype=torch.int64)
        else:
            pos = torch.randint(0, max_pos + 1, (rows,), device="cuda", dtype=torch.int64)
            pos[0] = max_pos
        freqs = torch.tensor(inv_freq(d, theta, scaling), device="cuda", dtype=torch.float64)
        calls.append(call("rope", {"heads": heads, "headDim": d}, x=randn_bf16(rows, heads * d, scale=2.0), positions=pos, invFreq=freqs))
    for (rows, heads, d, theta, scaling, how), c, a in zip(cases, calls, run_ok(calls)):
        t = c["tensors"]
        x = a["tensors"]["x"]
        ref, bound = rope_ref(t["x"], heads, d, t["positions"], t["invFreq"])
        within = bool(((x.double() - ref).abs() <= bound).all())
        name = f"{rows} rows x {heads} heads x {d}, pos {how}" + (", llama3 inv_freq" if scaling else "")
        out.append(result("rope", name, "rel err", rel_err(x, ref), BF16_REL, no_nan(x), half_ulp_ok=within,
                          inputs_unchanged_ok=inputs_unchanged(c, a)))
    return out


def check_silu_mul():
    out = []
    cases = [(37, 14336), (1, 37), (64, 4864), (7, 1003)]
    # The stacked gate and up projections' output, [rows][gate | up], read in place.
    calls = [call("silu_mul", {"width": width}, gateUp=torch.cat([randn_bf16(rows, width, scale=4.0), randn_bf16(rows, width)], dim=1))
             for rows, width in cases]
    for (rows, width), c, a in zip(cases, calls, run_ok(calls)):
        o = a["tensors"]["out"].view(rows, width)
        gate_up = c["tensors"]["gateUp"]
        ref = silu_ref(gate_up[:, :width]) * gate_up[:, width:].double()
        out.append(result("silu_mul", f"{rows}x{width}", "rel err", rel_err(o, ref), BF16_REL, no_nan(o), inputs_unchanged_ok=inputs_unchanged(c, a)))
    return out


def check_silu_add():
    out = []
    sizes = [37, 1, 37 * 4096 + 3, 1000]
    calls = [call("silu", x=randn_bf16(n, scale=4.0)) for n in sizes]
    for n, c, a in zip(sizes, calls, run_ok(calls)):
        x = a["tensors"]["x"]
        out.append(result("silu", f"n {n}", "rel err", rel_err(x, silu_ref(c["tensors"]["x"])), BF16_REL, no_nan(x)))
    sizes = [37, 1, 4096 * 37 + 5, 1000]
    calls = [call("add", x=randn_bf16(n, scale=3.0), y=randn_bf16(n)) for n in sizes]
    for n, c, a in zip(sizes, calls, run_ok(calls)):
        x = a["tensors"]["x"]
        diff = (x.float() - bf16_add(c["tensors"]["x"], c["tensors"]["y"]).float()).abs().max().item()
        out.append(result("add", f"n {n}", "max abs diff (exact)", diff, 0.0, no_nan(x), inputs_unchanged_ok=inputs_unchanged(c, a)))
    shapes = [(37, 896), (1, 37), (300, 1152), (5, 4099)]
    calls = [call("add_bias", x=randn_bf16(rows, width, scale=3.0), bias=randn_bf16(width)) for rows, width in shapes]
    for (rows, width), c, a in zip(shapes, calls, run_ok(calls)):
        x = a["tensors"]["x"]
        x0, bias = c["tensors"]["x"], c["tensors"]["bias"]
        diff = (x.float() - bf16_add(x0, bias[None, :].expand(rows, width)).float()).abs().max().item()
        out.append(result("add_bias", f"{rows}x{width}", "max abs diff (exact)", diff, 0.0, no_nan(x), inputs_unchanged_ok=inputs_unchanged(c, a)))
    return out


def attention_lse_call(q, k, q_heads, kv_heads, d):
    """Attention of q over all of k (one non-causal segment; V is K, unused here): its LSE is
    what the engine gives query_scores."""
    params = {"qHeads": q_heads, "kvHeads": kv_heads, "headDim": d, "segments": [{"start": 0, "count": k.shape[0], "causal": False}]}
    return call("attention", params, keep=["lse"], q=q, k0=k, v0=k)


def check_query_scores():
    out = []
    cases = [(37, 32, 8, 128, 5000), (1, 28, 4, 128, 777), (64, 32, 8, 64, 4099), (130, 28, 4, 128, 20001),
             (5, 32, 8, 128, 1), (200, 28, 4, 64, 3333), (64, 32, 8, 128, 131072)]
    # Scaled queries give peaked softmaxes (logits with std ~3), not near-uniform ones.
    inputs = [(randn_bf16(rows, hq * d, scale=3.0), randn_bf16(n, hkv * d)) for rows, hq, hkv, d, n in cases]
    lses = [a["tensors"]["lse"] for a in run_ok([attention_lse_call(q, k, hq, hkv, d) for (q, k), (_, hq, hkv, d, _) in zip(inputs, cases)])]
    calls = []
    for (q, k), lse, (_, hq, hkv, d, _) in zip(inputs, lses, cases):
        c = call("query_scores", {"qHeads": hq, "kvHeads": hkv, "headDim": d}, q=q, lse=lse, k=k)
        calls += [c, c]  # twice: the scores must not depend on the run
    answers = run_ok(calls)
    for i, ((rows, hq, hkv, d, n), (q, k), lse) in enumerate(zip(cases, inputs, lses)):
        a, again = answers[2 * i], answers[2 * i + 1]
        scores = a["tensors"]["scores"].view(hkv, n)
        ref_lse, ref_scores = scores_ref(q, k, hq, hkv, d)
        lse = lse.view(rows, hq)
        lse_err = (lse.double() - ref_lse).abs().max().item() if no_nan(lse) else float("inf")
        total = scores.double().sum(dim=1)  # each (row, head) spreads exactly 1 over the keys
        out.append(result("query_scores", f"{rows} rows, {hq}/{hkv} heads, d {d}, {n} keys", "rel err", rel_err(scores, ref_scores),
                          F32_REL, no_nan(scores) and no_nan(lse), lse_max_abs_err=lse_err, lse_ok=lse_err < LSE_ABS,
                          mass_ok=bool(((total - rows * (hq // hkv)).abs() < 1e-3 * rows * (hq // hkv)).all()),
                          deterministic_ok=bool(torch.equal(a["tensors"]["scores"], again["tensors"]["scores"])),
                          inputs_unchanged_ok=inputs_unchanged(calls[2 * i], a)))
    return out


def passing_select_ref(scores, count, lo, hi):
    """The CPU's passing::max_pool5 and top_k: scores max-pooled along each row (kernel 5, NaN
    never wins), then per row the `count` best tokens outside [lo, hi), ties to the earlier
    token, ascending."""
    heads, n = scores.shape
    s = scores.double().cpu()
    s = torch.where(torch.isnan(s), torch.full_like(s, -math.inf), s)
    pad = torch.full((heads, 2), -math.inf, dtype=torch.float64)
    pooled = torch.cat([pad, s, pad], dim=1).unfold(1, 5, 1).max(dim=-1).values
    picks = []
    for h in range(heads):
        row = pooled[h].tolist()
        eligible = [j for j in range(n) if not lo <= j < hi]
        best = sorted(eligible, key=lambda j: (-row[j], j))[:count]
        picks.append(sorted(best))
    return torch.tensor(picks, dtype=torch.int64).view(heads, count)


def check_passing_select():
    out = []
    cases = []
    for heads, n, count, lo, hi, kind in [(8, 16376, 1920, 0, 0, "normal"), (8, 16384, 2048, 0, 4096, "normal"),
                                            (4, 1000, 100, 10, 20, "ties"), (2, 500, 50, 0, 0, "nan"),
                                            (2, 300, 290, 100, 110, "all eligible"), (1, 5, 1, 0, 0, "normal"),
                                            (3, 1, 1, 0, 0, "normal"), (2, 24577, 100, 5, 9, "normal"), (8, 131072, 16384, 0, 0, "normal")]:
        if kind == "ties":
            scores = torch.randint(0, 5, (heads, n), device="cuda").float()
        else:
            scores = torch.randn(heads, n, device="cuda") * 3
        if kind == "nan":
            scores.view(-1)[torch.randperm(heads * n, device="cuda")[: heads * n // 10]] = float("nan")
            scores.view(-1)[torch.randperm(heads * n, device="cuda")[: heads * n // 20]] = -math.inf
        params = {"tokens": n, "count": count, "excludedStart": lo, "excludedEnd": hi}
        cases.append((heads, n, count, lo, hi, kind, call("passing_select", params, scores=scores)))
    # More than the eligible tokens must be refused.
    too_many = call("passing_select", {"tokens": 100, "count": 95, "excludedStart": 0, "excludedEnd": 10}, scores=torch.randn(2, 100, device="cuda"))
    answers = run([c[-1] for c in cases] + [too_many])
    for (heads, n, count, lo, hi, kind, c), a in zip(cases, answers):
        if "error" in a:
            raise KernelError("passing_select", a["error"])
        got = a["tensors"]["picked"].view(heads, count).cpu()
        ref = passing_select_ref(c["tensors"]["scores"], count, lo, hi)
        wrong = int((got != ref).sum().item())
        out.append(result("passing_select", f"{heads} heads x {n} tokens, {count} picked outside {lo}..{hi}, {kind}", "wrong picks", wrong, 0,
                          bool((got != 2 ** 32 - 1).all()), inputs_unchanged_ok=inputs_unchanged(c, a)))
    refusal = answers[-1]
    out.append(result("passing_select", "95 picked from 90 eligible: refused", "refused", 0 if refused(refusal, {"INTERNAL", "INVALID_INPUT"}) else 1, 0,
                      refusal=refusal.get("error")))
    return out


def check_gather():
    out = []
    cases = []
    for n, hkv, d, count in [(5000, 8, 128, 257), (777, 4, 64, 1), (1000, 4, 36, 37), (2048, 8, 128, 2048)]:
        kv = randn_bf16(n, hkv * d)
        picked = torch.randint(0, n, (hkv, count), device="cuda", dtype=torch.int64)
        # The same picks with some out of range (2^32 - 1 included): that call must be refused.
        bad = picked.clone().view(-1)
        bad_at = torch.randperm(bad.numel(), device="cuda")[: max(1, bad.numel() // 20)]
        bad_values = torch.tensor([n, n + 1, 2 ** 32 - 1], device="cuda", dtype=torch.int64)
        bad[bad_at] = bad_values[torch.arange(len(bad_at), device="cuda") % 3]
        cases.append((n, hkv, d, count, picked, len(bad_at), call("gather_per_head", {"headDim": d, "picked": picked.tolist()}, kv=kv),
                      call("gather_per_head", {"headDim": d, "picked": bad.view(hkv, count).tolist()}, kv=kv)))
    answers = run([c for case in cases for c in case[6:]])
    for i, (n, hkv, d, count, picked, bad, c, _) in enumerate(cases):
        a, refusal = answers[2 * i], answers[2 * i + 1]
        if "error" in a:
            raise KernelError("gather_per_head", a["error"])
        o = a["tensors"]["out"].view(count, hkv, d)
        kv3 = c["tensors"]["kv"].view(n, hkv, d)
        ref = torch.stack([kv3[picked[h], h] for h in range(hkv)], dim=1)  # [count, hkv, d]
        err = (o.float() - ref.float()).abs().max().item() if no_nan(o) else float("inf")
        out.append(result("gather_per_head", f"{n} tokens, {hkv} heads x {d}, {count} picked; with {bad} out of range: refused",
                          "max abs diff (copy)", err, 0.0, no_nan(o), inputs_unchanged_ok=inputs_unchanged(c, a),
                          refused_ok=refused(refusal, {"INTERNAL", "INVALID_INPUT"}), refusal=refusal.get("error")))
    return out


def checks():
    results = []
    for fn in [check_embed, check_rms_norm, check_add_rms_norm, check_rope, check_silu_mul, check_silu_add, check_query_scores, check_passing_select, check_gather]:
        results += fn()
        torch.cuda.empty_cache()
    return results


# ---- timings ------------------------------------------------------------------------------

def bench():
    """The heavy ops timed by the addon (ITERATIONS event-timed launches after the checked one,
    the median), all in one Node run; no tensor comes back."""
    timed = []  # (op, shape, call, bytes moved, flops)

    def add(op, shape, c, nbytes, flops=None):
        c["iterations"], c["keep"] = ITERATIONS, []
        timed.append((op, shape, c, nbytes, flops))

    rows, hidden = 8192, 4096
    x, w, d_ = randn_bf16(rows, hidden), randn_bf16(hidden), randn_bf16(rows, hidden)
    add("rms_norm", f"{rows}x{hidden}", call("rms_norm", {"eps": 1e-5}, x=x, w=w), 2 * rows * hidden * 2)
    add("add_rms_norm", f"{rows}x{hidden}", call("add_rms_norm", {"eps": 1e-5}, residual=x, delta=d_, w=w), 4 * rows * hidden * 2)
    ids = torch.randint(0, 32000, (rows,), device="cuda", dtype=torch.int64)
    table = randn_bf16(32000, hidden)
    add("embed", f"{rows}x{hidden}", call("embed", {"hidden": hidden}, table=table, ids=ids), 2 * rows * hidden * 2)
    inter = 14336
    add("silu_mul", f"{rows}x{inter}", call("silu_mul", {"width": inter}, gateUp=randn_bf16(rows, 2 * inter)), 3 * rows * inter * 2)

    rope_rows, heads, d = 32768, 32, 128
    pos = torch.arange(rope_rows, device="cuda", dtype=torch.int64) + 1048575 - rope_rows
    freqs = torch.tensor(inv_freq(d, 500000.0, LLAMA3), device="cuda", dtype=torch.float64)
    add("rope", f"{rope_rows} rows x {heads} heads x {d}", call("rope", {"heads": heads, "headDim": d}, x=randn_bf16(rope_rows, heads * d),
                                                               positions=pos, invFreq=freqs), 2 * rope_rows * heads * d * 2)

    q_rows, hq, hkv, d, n = 64, 32, 8, 128, 131072
    q, k = randn_bf16(q_rows, hq * d), randn_bf16(n, hkv * d)
    lse = scores_ref(q, k, hq, hkv, d)[0].float()  # the true LSE, as attention would give it
    add("query_scores", f"{q_rows} rows, {hq}/{hkv} heads, d {d}, {n} keys",
        call("query_scores", {"qHeads": hq, "kvHeads": hkv, "headDim": d}, q=q, lse=lse, k=k), n * hkv * d * 2 + hkv * n * 4,
        2 * q_rows * hq * n * d)
    for n, count in [(16384, 2048), (131072, 16384)]:
        add("passing_select", f"{hkv} heads x {n} tokens, {count} picked", call("passing_select", {"tokens": n, "count": count}, scores=torch.randn(hkv, n, device="cuda")),
            hkv * n * 4 + hkv * count * 4)

    rows_out = []
    for (op, shape, _, nbytes, flops), a in zip(timed, run_ok([t[2] for t in timed])):
        ms = a["medianMs"]
        r = {"op": op, "shape": shape, "ms": ms, "gb_per_s": nbytes / ms / 1e6}
        if flops:
            r["tflops"] = flops / ms / 1e9
        print(json.dumps(r))
        rows_out.append(r)
    return rows_out


# ---- report -------------------------------------------------------------------------------

def markdown(report):
    lines = [f"# cuda/ops.cu ({report['date']}, {report['gpu']}, torch {report['torch']}, seed {report['seed']})", ""]
    if "checks" in report:
        lines += ["| op | case | measure | error | limit | all written | other checks | pass |", "|---|---|---|---:|---:|---|---|---|"]
        for c in report["checks"]:
            other = ", ".join(f"{k[:-3]} {'ok' if v else 'FAILED'}" for k, v in c.items() if k.endswith("_ok"))
            err = c["err"] if isinstance(c["err"], int) else f"{c['err']:.2e}"
            lines.append(f"| {c['op']} | {c['case']} | {c['metric']} | {err} | {c['limit']:g} | {c['written']} | {other} | {c['pass']} |")
        lines.append("")
    if "bench" in report:
        lines += ["| op | shape | ms | GB/s | TFLOP/s |", "|---|---|---:|---:|---:|"]
        for b in report["bench"]:
            tf = f"{b['tflops']:.0f}" if "tflops" in b else ""
            lines.append(f"| {b['op']} | {b['shape']} | {b['ms']:.3f} | {b['gb_per_s']:.0f} | {tf} |")
    return "\n".join(lines) + "\n"


def main():
    seed = int(time.time())
    torch.manual_seed(seed)
    print(f"seed {seed}")
    props = torch.cuda.get_device_properties(0)
    report = {"date": datetime.date.today().isoformat(), "gpu": props.name, "torch": torch.__version__, "seed": seed}
    if "--bench-only" not in sys.argv:
        report["checks"] = checks()
    if "--checks-only" not in sys.argv:
        report["bench"] = bench()
    finish("ops", report, markdown(report))


if __name__ == "__main__":
    main()
