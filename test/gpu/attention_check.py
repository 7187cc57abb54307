"""GPU checks and benchmark of apb's attention kernels (cuda/attention.cu, the portable
mma.sync one; cuda/attention_sm90.cu, the Hopper TMA + wgmma one; cuda/attention_decode.cu,
a few rows over many keys) and of the LSE merge (cuda/merge.cu), run on a GPU host with
PyTorch.

The kernels run through the Rust launchers (crates/apb-cuda), reached from here through the
Node addon's runKernel (kernels.py, run_kernels.mjs), on fresh random inputs made here (seeded
from the clock; the seed is printed); the addon fills every output with NaN before the
launch. This script
  - checks O and LSE against a float64 reference on small shapes and a chunked float32
    reference on APB-sized ones, that every output element was written, and that the inputs
    come back unchanged;
  - times it beside PyTorch SDPA's FlashAttention-2 and cuDNN backends on the same shapes,
    counting FLOPs as FlashAttention does (causal rows as half); apb's times are the addon's
    median of event-timed launches, the peers' are timed here.
Writes attention.json and attention.md to $OUT (or the current directory); exits 1 if any
check fails.

usage: python3 test/gpu/attention_check.py [--checks-only] [--bench-only] [--quick] [--kernel=sm90|portable|decode] [--head-dim=64|128]
       [--match=TEXT] (bench only the shapes whose name holds TEXT)
"""
import datetime
import json
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kernels import finish, inputs_unchanged, run_ok  # noqa: E402

# The kernels checked and timed: the portable mma.sync one, and on Hopper (compute capability
# 9.0) the TMA + wgmma one, and the decode kernel for a few rows (all take head dims 64 and
# 128). --kernel=sm90, portable or decode picks one. The report names them as before (so
# results stay comparable); the addon calls them ADDON[name].
PORTABLE, SM90, DECODE = "apb_attention_bf16", "apb_attention_sm90_bf16", "apb_attention_decode"
ADDON = {PORTABLE: "portable", SM90: "sm90", DECODE: "decode"}
# The decode kernel takes at most this many rows x (q_heads / kv_heads) (attention_decode.rs).
DECODE_PACKED_ROWS = 16
# Timed launches per kernel and shape (after the checked one); their median is reported.
ITERATIONS = 20


def kernels():
    hopper = torch.cuda.get_device_capability(0) == (9, 0)
    chosen = [PORTABLE, SM90, DECODE] if hopper else [PORTABLE, DECODE]
    for arg in sys.argv:
        if arg.startswith("--kernel="):
            chosen = [{"sm90": SM90, "portable": PORTABLE, "decode": DECODE}[arg.split("=", 1)[1]]]
    return chosen


def decodes(rows, hq, hkv):
    """Whether the decode kernel takes these rows (the engine then runs it)."""
    return rows * (hq // hkv) <= DECODE_PACKED_ROWS


def merge_call(parts):
    """parts: [(o [rows, heads*d] bf16, lse [rows, heads] f32)]; the merged o and lse come back."""
    heads = parts[0][1].shape[-1]
    d = parts[0][0].numel() // parts[0][1].numel()
    tensors = {}
    for i, (o, l) in enumerate(parts):
        tensors[f"o{i}"], tensors[f"lse{i}"] = o, l
    return dict(kernel="merge", params={"heads": heads, "headDim": d}, tensors=tensors)


def merge_checks():
    """The merge kernel against the float64 formula (with -inf parts and rows), and attention
    over three segments == the merge of attention over each segment alone."""
    results = []
    cases = []
    for parts_n in [1, 2, 3, 8, 16]:
        rows, heads, d = 257, 8, 128
        parts = [(rand(rows, heads * d), torch.randn(rows, heads, device="cuda") * 3) for _ in range(parts_n)]
        for i, (_, l) in enumerate(parts):
            l[i::7] = float("-inf")  # some parts saw nothing for some rows
        for _, l in parts:
            l[5] = float("-inf")  # row 5: no part saw anything
        cases.append((parts_n, parts, merge_call(parts)))
    answers = run_ok([c for _, _, c in cases])
    for (parts_n, parts, call), a in zip(cases, answers):
        rows, heads = parts[0][1].shape
        d = parts[0][0].shape[1] // heads
        o, lse = a["tensors"]["o"].view(rows, heads * d), a["tensors"]["lse"].view(rows, heads)
        L = torch.stack([l.double() for _, l in parts])  # [parts, rows, heads]
        m = L.max(dim=0).values
        w = torch.exp(L - torch.where(torch.isinf(m), torch.zeros_like(m), m)).nan_to_num(0.0)
        O = torch.stack([x.double().view(rows, heads, d) for x, _ in parts])
        ref_o = (w[..., None] * O).sum(0) / w.sum(0).clamp_min(1e-300)[..., None]
        ref_lse = torch.where(w.sum(0) > 0, m + torch.log(w.sum(0)), torch.full_like(m, float("-inf")))
        finite = torch.isfinite(ref_lse)
        r = {
            "case": f"merge of {parts_n} parts", "o_rel_err": ((o.double().view(rows, heads, d) - ref_o).norm() / ref_o.norm()).item(),
            "lse_max_abs_err": (lse.double()[finite] - ref_lse[finite]).abs().max().item(),
            "empty_rows_ok": bool(torch.isneginf(lse[~finite]).all()) and bool((o.view(rows, heads, d)[~finite] == 0).all()),
            "outputs_written": not bool(torch.isnan(o).any() or torch.isnan(lse).any()),
            "inputs_unchanged": inputs_unchanged(call, a),
        }
        results.append(r)
    # Splitting keys into segments and merging equals one call over all of them.
    hq, hkv, d, rows = 32, 8, 128, 300
    q, segs = make_case(rows, [(700, 10, 600, False), (200, 0, 200, False), (320, 7, 310, True)], hq, hkv, d)
    whole, *alone = run_ok([attention_call(q, segs, hq, hkv, d)] + [attention_call(q, [s], hq, hkv, d) for s in segs])
    whole_o, whole_l = whole["tensors"]["o"].view(rows, hq * d), whole["tensors"]["lse"].view(rows, hq)
    parts = [(a["tensors"]["o"].view(rows, hq * d), a["tensors"]["lse"].view(rows, hq)) for a in alone]
    call = merge_call(parts)
    merged = run_ok([call])[0]
    o, lse = merged["tensors"]["o"].view(rows, hq * d), merged["tensors"]["lse"].view(rows, hq)
    finite = torch.isfinite(whole_l)
    results.append({
        "case": "attention split by segment, then merged", "o_rel_err": ((o.float() - whole_o.float()).norm() / whole_o.float().norm()).item(),
        "lse_max_abs_err": (lse[finite] - whole_l[finite]).abs().max().item(),
        "empty_rows_ok": bool(torch.equal(torch.isfinite(lse), finite)), "outputs_written": not bool(torch.isnan(o).any()),
        "inputs_unchanged": inputs_unchanged(call, merged),
    })
    for r in results:
        r.update(rows=257 if "parts" in r["case"] else rows, heads="8" if "parts" in r["case"] else "32/8", d=128, reference="float64" if "parts" in r["case"] else "one call")
        r["pass"] = r["o_rel_err"] < 1e-2 and r["lse_max_abs_err"] < 1e-3 and r["empty_rows_ok"] and r["outputs_written"] and r["inputs_unchanged"]
        print(json.dumps(r))
    return results


def attention_call(q, segments, q_heads, kv_heads, d, kernel=PORTABLE, iterations=0, keep=None):
    """The runKernel call of attention: q [rows, q_heads*d] bf16; segments [(k, v, start, count,
    causal)] with k/v [tokens, kv_heads*d]; o and lse come back."""
    tensors = {"q": q}
    for i, (k, v, _, _, _) in enumerate(segments):
        tensors[f"k{i}"], tensors[f"v{i}"] = k, v
    params = {"qHeads": q_heads, "kvHeads": kv_heads, "headDim": d, "kernel": ADDON[kernel],
              "segments": [{"start": start, "count": count, "causal": bool(causal)} for (_, _, start, count, causal) in segments]}
    return dict(kernel="attention", params=params, tensors=tensors, iterations=iterations, keep=keep)


def visible_mask(segments, rows, device):
    """[rows, total_keys] bool: which concatenated keys each row sees."""
    parts = []
    i = torch.arange(rows, device=device)[:, None]
    for (_, _, _, count, causal) in segments:
        j = torch.arange(count, device=device)[None, :]
        parts.append(j <= i + (count - rows) if causal else torch.ones(rows, count, dtype=torch.bool, device=device))
    return torch.cat(parts, dim=1)


def reference(q, segments, q_heads, kv_heads, d, dtype, row_chunk=None):
    """O and LSE in `dtype` from the bf16 inputs, by explicit masked softmax (rows in chunks)."""
    rows = q.shape[0]
    k = torch.cat([k[s:s + c] for (k, _, s, c, _) in segments]).to(dtype).view(-1, kv_heads, d)
    v = torch.cat([v[s:s + c] for (_, v, s, c, _) in segments]).to(dtype).view(-1, kv_heads, d)
    group = q_heads // kv_heads
    k = k.repeat_interleave(group, dim=1).transpose(0, 1)  # [h, keys, d]
    v = v.repeat_interleave(group, dim=1).transpose(0, 1)
    qf = q.to(dtype).view(rows, q_heads, d).transpose(0, 1)  # [h, rows, d]
    mask = visible_mask(segments, rows, q.device)
    o = torch.empty(q_heads, rows, d, dtype=dtype, device=q.device)
    lse = torch.empty(q_heads, rows, dtype=dtype, device=q.device)
    step = row_chunk or rows
    for r0 in range(0, rows, step):
        s = qf[:, r0:r0 + step] @ k.transpose(1, 2) / math.sqrt(d)
        s = s.masked_fill(~mask[r0:r0 + step][None], float("-inf"))
        l = torch.logsumexp(s, dim=-1)
        p = torch.exp(s - l[..., None]).nan_to_num(0.0)
        o[:, r0:r0 + step] = p @ v
        lse[:, r0:r0 + step] = l
        del s, p
    return o.transpose(0, 1).reshape(rows, q_heads * d), lse.transpose(0, 1)


def rand(*shape):
    return torch.randn(*shape, device="cuda", dtype=torch.bfloat16)


def make_case(rows, seg_specs, q_heads, kv_heads, d):
    """seg_specs: [(buffer_tokens, start, count, causal)]; returns q and segments on fresh data."""
    q = rand(rows, q_heads * d)
    segs = []
    for (tokens, start, count, causal) in seg_specs:
        segs.append((rand(tokens, kv_heads * d), rand(tokens, kv_heads * d), start, count, causal))
    return q, segs


def compare(q, segs, hq, hkv, d, dtype, call, answer, row_chunk=None):
    """The kernel's O and LSE (from `answer`, the result of `call`) against the reference in `dtype`."""
    rows = q.shape[0]
    o, lse = answer["tensors"]["o"].view(rows, hq * d), answer["tensors"]["lse"].view(rows, hq)
    ro, rl = reference(q, segs, hq, hkv, d, dtype, row_chunk)
    finite = torch.isfinite(rl)
    ok_poison = bool(torch.isfinite(o).all()) and not bool(torch.isnan(lse).any())
    o_err = ((o.to(dtype) - ro).norm() / ro.norm().clamp_min(1e-30)).item()
    lse_err = (lse.to(dtype)[finite] - rl[finite]).abs().max().item() if finite.any() else 0.0
    same_empty = bool((~torch.isfinite(lse) == ~finite).all()) and bool((o.view(-1, hq, d)[~finite] == 0).all())
    return {"o_rel_err": o_err, "lse_max_abs_err": lse_err, "outputs_written": ok_poison, "empty_rows_ok": same_empty,
            "inputs_unchanged": inputs_unchanged(call, answer), "ran": answer["kernel"]}


def decode_cases():
    """Few rows, packed per KV head: one row, rows x group up to 16, causal tails that hide keys
    from the first rows or every key, a long cache cut into parts, no keys at all."""
    cases = []
    for hq, hkv in [(32, 8), (28, 4), (8, 8), (64, 8), (9, 3)]:
        for d in [128, 64]:
            most = DECODE_PACKED_ROWS // (hq // hkv)
            cases.append(("decode one row", 1, [(33, 3, 29, False), (9, 0, 1, True)], hq, hkv, d))
            cases.append(("decode, 4 segments, causal tail", most, [(500, 3, 257, False), (130, 1, 129, False), (64, 0, 1, False), (400, 17, 383, True)], hq, hkv, d))
            cases.append(("decode, rows that see nothing", most, [(64, 0, 1, True)], hq, hkv, d))
            cases.append(("decode over many keys, parts", 1, [(70000, 5, 65000, False), (4, 0, 1, True)], hq, hkv, d))
            cases.append(("decode, no keys", 1, [(8, 0, 0, False)], hq, hkv, d))
    return cases


def checks(quick, kernel):
    if kernel == DECODE:
        return checks_of(decode_cases(), kernel, [])
    cases = []
    # Small shapes against float64: anchor rows (causal), apb local rows (passing, anchor, local causal),
    # odd lengths, rows that see nothing (causal over fewer keys than rows).
    for hq, hkv in [(32, 8), (28, 4), (40, 8)]:
        for d in [128, 64]:
            cases.append(("anchor rows", 77, [(77, 0, 77, True)], hq, hkv, d))
            cases.append(("apb local rows", 130, [(300, 11, 195, False), (96, 0, 96, False), (140, 5, 130, True)], hq, hkv, d))
            cases.append(("empty rows", 50, [(64, 0, 20, True)], hq, hkv, d))
            cases.append(("one row", 1, [(33, 3, 29, False), (9, 0, 1, True)], hq, hkv, d))
            cases.append(("4 segments, tails", 333, [(500, 3, 257, False), (130, 1, 129, False), (64, 0, 1, False), (400, 17, 383, True)], hq, hkv, d))
            # Few rows over many keys: the sm90 launcher cuts the walk of key tiles into parts
            # (one per group of SMs the row blocks leave idle) and merges them.
            cases.append(("query rows, split keys", 64, [(20000, 7, 19000, False), (64, 0, 64, True)], hq, hkv, d))
            cases.append(("one row, split keys", 1, [(9000, 0, 9000, True)], hq, hkv, d))
    # APB-sized: host 7 of 128K on 8 hosts (passing 7x2K, anchor 4K, local 16K), 32/8 heads.
    big = [("apb host 7 local rows", 16384, [(14336, 0, 14336, False), (4096, 0, 4096, False), (16384, 0, 16384, True)], d) for d in [128, 64]]
    if quick:
        big = [("apb host 3 local rows (quick)", 4096, [(6144, 0, 6144, False), (1024, 0, 1024, False), (4096, 0, 4096, True)], 128)]
    return checks_of(cases, kernel, big)


def checks_of(cases, kernel, big):
    """Small cases against float64 in one Node run; `big` ones, 32/8 heads, against chunked float32."""
    results = []
    inputs = [make_case(rows, specs, hq, hkv, d) for _, rows, specs, hq, hkv, d in cases]
    calls = [attention_call(q, segs, hq, hkv, d, kernel) for (q, segs), (_, _, _, hq, hkv, d) in zip(inputs, cases)]
    # One Node run for all the small cases.
    for (name, rows, _, hq, hkv, d), (q, segs), call, answer in zip(cases, inputs, calls, run_ok(calls)):
        r = compare(q, segs, hq, hkv, d, torch.float64, call, answer)
        r.update(kernel=kernel, case=name, rows=rows, heads=f"{hq}/{hkv}", d=d, reference="float64")
        results.append(r)
    for name, rows, specs, d in big:
        q, segs = make_case(rows, specs, 32, 8, d)
        call = attention_call(q, segs, 32, 8, d, kernel)
        r = compare(q, segs, 32, 8, d, torch.float32, call, run_ok([call])[0], row_chunk=1024)
        r.update(kernel=kernel, case=name, rows=rows, heads="32/8", d=d, reference="float32 chunked")
        results.append(r)
    for r in results:
        # "ran": the kernel the addon says it launched, which must be the one asked for.
        r["pass"] = r["o_rel_err"] < 1e-2 and r["lse_max_abs_err"] < 1e-3 and r["outputs_written"] and r["empty_rows_ok"] \
            and r["inputs_unchanged"] and r["ran"] == ADDON[kernel]
        print(json.dumps(r))
    return results


def time_ms(fn, budget_ms=300.0):
    """Median of individually event-timed runs, after a warm-up; about budget_ms in all (the
    PyTorch peers; apb's kernels are timed the same way by the addon, ITERATIONS launches)."""
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    torch.cuda.synchronize()
    n = int(max(5, min(50, budget_ms / max(start.elapsed_time(end), 1e-3))))
    times = []
    for _ in range(n):
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return sorted(times)[n // 2]


def flops(rows, full_keys, causal_keys, hq, d):
    # FlashAttention's count: 4 * heads * rows * (fully visible keys + causal keys / 2) * d.
    return 4 * hq * rows * (full_keys + causal_keys / 2) * d


def bench(quick, chosen):
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.nn.attention.bias import causal_lower_right

    hq, hkv = 32, 8
    shapes = [("full causal 8K", 8192, [], 128)]
    if not quick:
        shapes += [("full causal 32K", 32768, [], 128), ("full causal 128K", 131072, [], 128)]
    for p in ([0, 3, 7] if quick else range(8)):
        shapes.append((f"apb local 16K + anchor 4K + passing {p}x2K", 16384, [p * 2048, 4096], 128))
    # Short calls, as each of 8 hosts makes them at 32K: a causal block of 2K (a zigzag chunk)
    # or 4K tokens, star's local rows over its 4K anchor; 16K beside them for the trend.
    shapes += [(f"short: causal {n // 1024}K", n, [], 128) for n in [2048, 4096, 16384]]
    shapes.append(("short: star local 4K + anchor 4K", 4096, [4096], 128))
    # Ring steps at 128K on 8 hosts, off the diagonal (keys fully visible, no causal part):
    # plain ring's 16K rows over a held 16K block, and ring-zigzag's two 8K chunks, the later
    # one over both chunks of the held block and the earlier over one.
    shapes += [("step: ring 16K rows over 16K keys", 16384, [16384], 128, False),
               ("step: zigzag 8K rows over 2 x 8K keys", 8192, [8192, 8192], 128, False),
               ("step: zigzag 8K rows over 8K keys", 8192, [8192], 128, False)]
    # Head dim 64 (SmolLM2, small Qwen2 models).
    shapes.append(("full causal 8K", 8192, [], 64))
    if not quick:
        shapes += [("full causal 32K", 32768, [], 64), ("full causal 128K", 131072, [], 64)]
    shapes.append(("apb local 16K + anchor 4K + passing 7x2K", 16384, [7 * 2048, 4096], 64))
    # Few rows over a long cache: the query pass and one decode step.
    shapes += [("query 64 rows over 128K keys", 64, [131072 - 64], 128)]
    # One decode step (and two rows, as a two-token step would be) over a long cache.
    shapes += [(f"decode 1 row over {n // 1024}K keys", 1, [n - 1], 128) for n in [8192, 32768, 131072]]
    shapes += [("decode 4 rows over 128K keys", 4, [131068], 128), ("decode 1 row over 128K keys", 1, [131071], 64)]
    only = [int(a.split("=")[1]) for a in sys.argv if a.startswith("--head-dim=")]
    match = [a.split("=", 1)[1] for a in sys.argv if a.startswith("--match=")]
    chosen_shapes = [s for s in shapes if (not only or s[3] in only) and (not match or match[0] in s[0])]
    rows_out = []
    for name, rows, prefix, d, *rest in chosen_shapes:
        # Each shape's rows see their own keys causally after the prefix, unless it says not.
        local = rest[0] if rest else True
        q = rand(rows, hq * d)
        k_local, v_local = rand(rows, hkv * d), rand(rows, hkv * d)
        segs = [(rand(n, hkv * d), rand(n, hkv * d), 0, n, False) for n in prefix if n > 0]
        if local:
            segs.append((k_local, v_local, 0, rows, True))
        full_keys = sum(prefix)
        f = flops(rows, full_keys, rows if local else 0, hq, d)
        keys = full_keys + (rows if local else 0)
        # The kernel the engine runs on this shape: its figures are the ones compared with peers.
        prefill_kernels = [k for k in chosen if k != DECODE]
        engine = DECODE if (DECODE in chosen and decodes(rows, hq, hkv)) or not prefill_kernels else prefill_kernels[-1]
        row = {"shape": name, "rows": rows, "keys": keys, "d": d, "engine": engine, "kv_bytes": 2 * keys * hkv * d * 2}
        # One Node run per shape (q alone is 1 GiB at 128K rows); no tensor comes back.
        runs = [k for k in chosen if k != DECODE or decodes(rows, hq, hkv)]
        calls = [attention_call(q, segs, hq, hkv, d, kernel, iterations=ITERATIONS, keep=[]) for kernel in runs]
        for kernel, answer in zip(runs, run_ok(calls)):
            if answer["kernel"] != ADDON[kernel]:
                raise RuntimeError(f"asked for the {ADDON[kernel]} attention kernel, the addon ran {answer['kernel']}")
            ms = answer["medianMs"]
            row[f"{kernel}_ms"], row[f"{kernel}_tflops"] = ms, f / ms / 1e9
        # Peers get the keys concatenated (the copy is not timed) and lower-right causal.
        kc = torch.cat([s[0] for s in segs]).view(1, keys, hkv, d).transpose(1, 2)
        vc = torch.cat([s[1] for s in segs]).view(1, keys, hkv, d).transpose(1, 2)
        qc = q.view(1, rows, hq, d).transpose(1, 2)
        for label, backend in [("fa2", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION)]:
            try:
                with sdpa_kernel([backend]):
                    if not local:
                        fn = lambda: torch.nn.functional.scaled_dot_product_attention(qc, kc, vc, enable_gqa=True)
                    elif full_keys == 0:
                        fn = lambda: torch.nn.functional.scaled_dot_product_attention(qc, kc, vc, is_causal=True, enable_gqa=True)
                    else:
                        bias = causal_lower_right(rows, keys)
                        fn = lambda: torch.nn.functional.scaled_dot_product_attention(qc, kc, vc, attn_mask=bias, enable_gqa=True)
                    ms = time_ms(fn)
                row[f"{label}_ms"] = ms
                row[f"{label}_tflops"] = f / ms / 1e9
            except Exception as e:  # a backend that refuses a shape is reported, not fatal
                row[f"{label}_error"] = str(e).splitlines()[0][:160]
        print(json.dumps(row))
        rows_out.append(row)
        del q, k_local, v_local, segs, calls, kc, vc, qc
        torch.cuda.empty_cache()
    return rows_out


def markdown(report, chosen):
    lines = [f"# APB attention kernels ({report['date']}, {report['gpu']}, torch {report['torch']})", ""]
    if "checks" in report:
        lines += ["| kernel | check | rows | heads | d | O rel. err | LSE max abs err | pass |", "|---|---|---:|---|---:|---:|---:|---|"]
        lines += [f"| {c.get('kernel', 'merge')} | {c['case']} ({c['reference']}) | {c['rows']} | {c['heads']} | {c['d']} | {c['o_rel_err']:.2e} | {c['lse_max_abs_err']:.2e} | {c['pass']} |" for c in report["checks"]]
        lines.append("")
    if "bench" in report:
        names = {PORTABLE: "mma.sync", SM90: "sm90 (TMA+wgmma)", DECODE: "decode"}
        head = [f"{names[k]} TFLOP/s" for k in chosen] + ["FA2 TFLOP/s", "cuDNN TFLOP/s", "apb / FA2", "apb / cuDNN"]
        lines += ["apb: the kernel the engine runs on the shape (decode where the rows pack into it).", "",
                  "| shape (32/8 heads) | d | " + " | ".join(head) + " |", "|---|---:|" + "---:|" * len(head)]
        fmt = lambda x: f"{x:.0f}" if x else "n/a"
        for b in report["bench"]:
            best = b.get(f"{b.get('engine', chosen[-1])}_tflops")
            fa2, cud = b.get("fa2_tflops"), b.get("cudnn_tflops")
            ratio = lambda x: f"{best / x:.2f}" if x and best else "n/a"
            cells = [fmt(b.get(f"{k}_tflops")) for k in chosen] + [fmt(fa2), fmt(cud), ratio(fa2), ratio(cud)]
            lines.append(f"| {b['shape']} | {b.get('d', 128)} | " + " | ".join(cells) + " |")
        few = [b for b in report["bench"] if b["rows"] <= 64]
        if few:
            # Few rows are bound by reading K and V: their time, and the rate of that read.
            lines += ["", "Few rows over a long cache: milliseconds, and GB/s of K and V read once (apb's kernel).", "",
                      "| shape (32/8 heads) | d | " + " | ".join(f"{names[k]} ms" for k in chosen) + " | FA2 ms | cuDNN ms | apb GB/s |",
                      "|---|---:|" + "---:|" * (len(chosen) + 3)]
            ms = lambda x: f"{x:.3f}" if x else "n/a"
            for b in few:
                apb_ms = b.get(f"{b.get('engine', chosen[-1])}_ms")
                gbs = f"{b['kv_bytes'] / apb_ms / 1e6:.0f}" if apb_ms and "kv_bytes" in b else "n/a"
                cells = [ms(b.get(f"{k}_ms")) for k in chosen] + [ms(b.get("fa2_ms")), ms(b.get("cudnn_ms")), gbs]
                lines.append(f"| {b['shape']} | {b['d']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main():
    quick = "--quick" in sys.argv
    chosen = kernels()
    seed = int(time.time())
    torch.manual_seed(seed)
    print(f"seed {seed}")
    props = torch.cuda.get_device_properties(0)
    report = {"date": datetime.date.today().isoformat(), "gpu": props.name, "torch": torch.__version__, "seed": seed, "kernels": chosen}
    if "--bench-only" not in sys.argv:
        report["checks"] = [c for k in chosen for c in checks(quick, k)] + merge_checks()
    if "--checks-only" not in sys.argv:
        report["bench"] = bench(quick, chosen)
    finish("attention", report, markdown(report, chosen))


if __name__ == "__main__":
    main()
