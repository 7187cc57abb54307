// The element-wise and gather operations of a Llama-family decoder on the GPU, and the
// query-aware passing score: what the CUDA backend needs beside GEMMs and attention.
// Semantics follow the CPU backend (crates/apb-engine/src/cpu): activations are bf16,
// [rows][width] row-major, math in fp32 (RoPE angles in fp64), one rounding to bf16 per
// output.
//
// Two ways in: the C launchers below (device pointers and a cudaStream_t passed as void*;
// they check shapes and the launch and return an APB_OPS_* code), used by the GPU checks
// through ctypes; and the kernel entry points, extern "C" so the engine launches them by
// name through the driver API (cuLaunchKernel). For each entry the exact parameter list
// (in order), grid, block and dynamic shared memory the launcher uses are given here; a
// driver-API caller must do the same checks the launcher does (listed with each launcher).
//
// Conventions: "bf16*" is __nv_bfloat16* (uint16 bits on the Rust side); counts and strides
// are in elements, not bytes. Kernels that can use 16-byte accesses decide so themselves
// (width and strides multiples of 8, pointers 16-byte aligned) and fall back to scalar
// accesses otherwise, so those entry points have no alignment preconditions. The two
// tensor-core scoring kernels copy 16-byte pieces and need q and k 16-byte aligned.
#pragma once
#include <stdint.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

// Every launcher returns an apb_status (status.h): APB_BAD_SHAPE for a size out of range,
// APB_BAD_HEAD_DIM / APB_BAD_HEADS for the scoring ops' heads, APB_BAD_POINTER for a null
// pointer, APB_BAD_ALIGNMENT for a scoring op's unaligned q or k, APB_LAUNCH_FAILED.
// apb_ops_error_text is apb_status_text, exported for callers through ctypes.
const char* apb_ops_error_text(int code);

// Threads per block of every kernel below unless stated otherwise.
#define APB_OPS_THREADS 256
// Element-wise kernels: one thread per "chunk" of 8 consecutive elements of a row (the last
// chunk of a row may be shorter); chunks = ceil(width / 8), grid.x = ceil(items / 256).
#define APB_OPS_CHUNK 8

// ---- Embedding --------------------------------------------------------------------------
// out[i][:] = table[ids[i]][:]. An id >= vocab reads nothing: its row of `out` is zeros and,
// if bad_ids is not null, *bad_ids is incremented once per such row (zero it first). The CPU
// backend rejects such ids before the gather; the engine should check ids on the host too.
// table [vocab][hidden] bf16, ids [rows] uint32, out [rows][hidden] bf16.
// Launcher checks: rows, vocab >= 0, hidden > 0; table, ids, out non-null when rows > 0.
int apb_embed_bf16(const void* table, int64_t vocab, int64_t hidden, const uint32_t* ids, int64_t rows, void* out,
                   int32_t* bad_ids, void* stream);
// Entry apb_embed_bf16_kernel(const bf16* table, int64_t vocab, int64_t hidden,
//   const uint32_t* ids, int64_t rows, bf16* out, int32_t* bad_ids)
// grid (ceil(rows * ceil(hidden / 8) / 256)), block 256, dynamic smem 0.

// ---- RMSNorm ----------------------------------------------------------------------------
// out[r] = x[r] / sqrt(mean(x[r]^2) + eps) * w, fp32 sums, one rounding (LlamaRMSNorm as the
// CPU backend computes it). x, out [rows][hidden] bf16 (out may equal x), w [hidden] bf16.
// Launcher checks: rows >= 0, hidden > 0, pointers non-null when rows > 0.
int apb_rms_norm_bf16(const void* x, const void* w, void* out, int64_t rows, int32_t hidden, float eps, void* stream);
// Entry apb_rms_norm_bf16_kernel(const bf16* x, const bf16* w, bf16* out, int64_t rows,
//   int32_t hidden, float eps)
// grid (rows), block 256, dynamic smem 0 (one block per row; rows up to 2^31 - 1).

// The residual add and the next RMSNorm of a decoder layer in one pass:
//   residual[r] = bf16(residual[r] + delta[r])   (in place, rounded exactly as apb_add_bf16)
//   out[r] = rms_norm(residual[r])               (of the rounded residual, as the unfused ops)
// residual, delta, out [rows][hidden] bf16 (out may equal delta, not residual), w [hidden].
// Launcher checks: as apb_rms_norm_bf16.
int apb_add_rms_norm_bf16(void* residual, const void* delta, const void* w, void* out, int64_t rows, int32_t hidden,
                          float eps, void* stream);
// Entry apb_add_rms_norm_bf16_kernel(bf16* residual, const bf16* delta, const bf16* w,
//   bf16* out, int64_t rows, int32_t hidden, float eps)
// grid (rows), block 256, dynamic smem 0.

// ---- RoPE -------------------------------------------------------------------------------
// In place on x: row r holds `heads` heads of head_dim values at x + r * row_stride (so the
// q or k columns of a fused QKV output can be rotated in place: row_stride >= heads *
// head_dim). Rotate-half convention (transformers): with half = head_dim / 2,
//   a' = a cos - b sin,  b' = b cos + a sin   for a = x[i], b = x[i + half], i < half,
// angle = positions[r] * inv_freq[i] computed and reduced in fp64 (positions reach 2^20,
// where an fp32 angle is off by up to 0.03 rad and a fast-math fp32 sine by far more), cos
// and sin rounded to fp32.
// positions [rows] uint32, inv_freq [head_dim / 2] float64 (the CPU backend's f64 values,
// Llama 3 scaling folded in; fp32 inv_freq alone would put the angle off by up to
// 2^20 * 2^-24 rad).
// Launcher checks: rows >= 0, heads > 0, head_dim even and 2..512, row_stride >= heads *
// head_dim, pointers non-null when rows > 0.
#define APB_ROPE_ROWS_PER_BLOCK 4
#define APB_ROPE_MAX_HEAD_DIM 512
int apb_rope_bf16(void* x, const uint32_t* positions, const double* inv_freq, int64_t rows, int32_t heads,
                  int32_t head_dim, int64_t row_stride, void* stream);
// Entry apb_rope_bf16_kernel(bf16* x, const uint32_t* positions, const double* inv_freq,
//   int64_t rows, int32_t heads, int32_t head_dim, int64_t row_stride)
// grid (ceil(rows / 4)), block 256, dynamic smem 0 (8 KiB static: the block's cos and sin tables).

// ---- SwiGLU and adds --------------------------------------------------------------------
// out[r][c] = silu(gate[r][c]) * up[r][c] for c < width, silu(g) = g / (1 + exp(-g)); each
// of gate, up and out has its own row stride (a fused [rows][2 * inter] gate|up GEMM output
// is gate = base, up = base + inter, strides 2 * inter).
// Launcher checks: rows >= 0, width > 0, every stride >= width, pointers non-null when rows > 0.
int apb_silu_mul_bf16(const void* gate, int64_t gate_stride, const void* up, int64_t up_stride, void* out,
                      int64_t out_stride, int64_t rows, int64_t width, void* stream);
// Entry apb_silu_mul_bf16_kernel(const bf16* gate, int64_t gate_stride, const bf16* up,
//   int64_t up_stride, bf16* out, int64_t out_stride, int64_t rows, int64_t width)
// grid (ceil(rows * ceil(width / 8) / 256)), block 256, dynamic smem 0.

// x[i] = silu(x[i]) for i < n (in place). Launcher checks: n >= 0, x non-null when n > 0.
int apb_silu_bf16(void* x, int64_t n, void* stream);
// Entry apb_silu_bf16_kernel(bf16* x, int64_t n)
// grid (ceil(ceil(n / 8) / 256)), block 256, dynamic smem 0.

// x[i] = bf16(x[i] + y[i]) for i < n (in place; fp32 add, one rounding).
// Launcher checks: n >= 0, pointers non-null when n > 0.
int apb_add_bf16(void* x, const void* y, int64_t n, void* stream);
// Entry apb_add_bf16_kernel(bf16* x, const bf16* y, int64_t n)
// grid (ceil(ceil(n / 8) / 256)), block 256, dynamic smem 0.

// x[r][c] = bf16(x[r][c] + bias[c]): a linear layer's bias (Qwen2's q/k/v), x [rows][width].
// Launcher checks: rows >= 0, width > 0, pointers non-null when rows > 0.
int apb_add_bias_bf16(void* x, const void* bias, int64_t rows, int64_t width, void* stream);
// Entry apb_add_bias_bf16_kernel(bf16* x, const bf16* bias, int64_t rows, int64_t width)
// grid (ceil(rows * ceil(width / 8) / 256)), block 256, dynamic smem 0.

// ---- Conversions ------------------------------------------------------------------------
// n elements; float -> bf16 rounds to nearest even (NaN stays NaN), bf16 -> float is exact.
// Launcher checks: n >= 0, pointers non-null when n > 0.
int apb_f32_to_bf16(const float* in, void* out, int64_t n, void* stream);
int apb_bf16_to_f32(const void* in, float* out, int64_t n, void* stream);
// Entries apb_f32_to_bf16_kernel(const float* in, bf16* out, int64_t n) and
// apb_bf16_to_f32_kernel(const bf16* in, float* out, int64_t n):
// grid (ceil(ceil(n / 8) / 256)), block 256, dynamic smem 0.

// ---- Query-aware passing score ----------------------------------------------------------
// The training-free score of the passing block (cpu/select.rs: query_scores): with q the
// embedded query's rows [q_rows][q_heads][head_dim] (after RoPE), k the local keys
// [n][kv_heads][head_dim] (after RoPE), group = q_heads / kv_heads and
//   lse[r][h] = log sum_j exp(q[r][h] . k[j][h / group] / sqrt(head_dim)),
//   scores[g][j] = sum_{r < q_rows} sum_{h in g's group} exp(q[r][h] . k[j][g] / sqrt(head_dim) - lse[r][h]),
// i.e. the softmax attention key j gets, summed over the rows and the group's heads.
// Two steps, so the LSE can come from elsewhere (any [q_rows][q_heads] natural-log LSE over
// the same n keys, e.g. attention's): apb_query_lse_bf16, then apb_query_scores_bf16.
// Both use tensor cores (mma.sync, bf16 in, fp32 accumulate) and no float atomics, so the
// results are deterministic. head_dim 64 or 128.

// Step 1: LSE of every (row, q head) over the n keys. Keys are split into ranges of
// keys_per_split (a multiple of 64); each block owns 128 (row, head) pairs of one KV head
// and one range, and writes the range's (max, sum) per pair; a second kernel combines them.
// Workspace: splits * q_rows * q_heads * 2 floats, splits = ceil(n / keys_per_split).
// keys_per_split as the launcher picks it (the driver-API caller may pick any multiple of 64):
//   blocks = ceil(q_rows * group / 128) * kv_heads, target = ceil(1024 / blocks),
//   keys_per_split = max(512, round_up(ceil(n / target), 64)).
// With n == 0 every LSE is -inf.
// Launcher checks: q_rows, n >= 0; q_heads, kv_heads > 0, kv_heads divides q_heads;
// head_dim 64 or 128; q and k 16-byte aligned, workspace 8-byte aligned (float pairs);
// workspace_floats >= apb_query_lse_workspace_floats(...); pointers non-null where used
// (q if q_rows > 0, k if n > 0, workspace if n > 0, lse if q_rows > 0).
#define APB_LSE_PAIRS_PER_BLOCK 128
#define APB_LSE_THREADS 128
#define APB_LSE_KEYS_PER_TILE 64
#define apb_query_lse_smem_bytes(head_dim) \
  ((APB_LSE_PAIRS_PER_BLOCK + 2 * APB_LSE_KEYS_PER_TILE) * ((head_dim) + 8) * 2)
int64_t apb_query_lse_keys_per_split(int64_t q_rows, int32_t q_heads, int32_t kv_heads, int64_t n);
int64_t apb_query_lse_workspace_floats(int64_t q_rows, int32_t q_heads, int32_t kv_heads, int64_t n);
int apb_query_lse_bf16(const void* q, int64_t q_rows, int32_t q_heads, const void* k, int64_t n, int32_t kv_heads,
                       int32_t head_dim, float* workspace, int64_t workspace_floats, float* lse, void* stream);
// Entries apb_query_lse_partial_d64 / apb_query_lse_partial_d128(const bf16* q, const bf16* k,
//   float* partial, int64_t q_rows, int32_t q_heads, int32_t kv_heads, int64_t n,
//   int64_t keys_per_split)
// grid (splits, ceil(q_rows * group / 128), kv_heads), block 128,
// smem apb_query_lse_smem_bytes(head_dim) dynamic (69,632 bytes for 128: raise
// CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES first; 36,864 for 64).
// partial[s][r * q_heads + h] = (max of the range's scaled logits in log2 units, sum of
// exp2(logit - max)), as two floats.
// Then apb_query_lse_combine(const float* partial, float* lse, int64_t pairs, int32_t splits)
// with pairs = q_rows * q_heads: grid (ceil(pairs / 256)), block 256, dynamic smem 0.

// Step 2: scores [kv_heads][n] float. lse [q_rows][q_heads] as step 1 writes it. Each block
// owns 256 keys of one KV head (held in registers as mma operands) and streams the group's
// (row, head) pairs through shared memory 64 at a time.
// Launcher checks: as step 1 (no workspace).
#define APB_SCORES_KEYS_PER_BLOCK 256
#define APB_SCORES_THREADS 256
#define APB_SCORES_PAIRS_PER_STEP 64
#define apb_query_scores_smem_bytes(head_dim) (APB_SCORES_KEYS_PER_BLOCK * ((head_dim) + 8) * 2)
int apb_query_scores_bf16(const void* q, const float* lse, int64_t q_rows, int32_t q_heads, const void* k, int64_t n,
                          int32_t kv_heads, int32_t head_dim, float* scores, void* stream);
// Entries apb_query_scores_d64 / apb_query_scores_d128(const bf16* q, const float* lse,
//   const bf16* k, float* scores, int64_t q_rows, int32_t q_heads, int32_t kv_heads, int64_t n)
// grid (ceil(n / 256), kv_heads), block 256, smem apb_query_scores_smem_bytes(head_dim)
// dynamic (69,632 bytes for 128: raise the limit first; 36,864 for 64).

// ---- Gathering each KV head's picked tokens ---------------------------------------------
// out[i][h][:] = kv[picked[h][i]][h][:] (cpu/select.rs: gather_per_head): kv [n][kv_heads]
// [head_dim] bf16, picked [kv_heads][count] uint32, out [count][kv_heads][head_dim]. An index
// >= n reads nothing: that slot of `out` is zeros and, if bad_ids is not null, *bad_ids is
// incremented once per such (i, h).
// Launcher checks: n, count >= 0; kv_heads, head_dim > 0; pointers non-null when count > 0.
int apb_gather_per_head_bf16(const void* kv, int64_t n, int32_t kv_heads, int32_t head_dim, const uint32_t* picked,
                             int64_t count, void* out, int32_t* bad_ids, void* stream);
// Entry apb_gather_per_head_bf16_kernel(const bf16* kv, int64_t n, int32_t kv_heads,
//   int32_t head_dim, const uint32_t* picked, int64_t count, bf16* out, int32_t* bad_ids)
// grid (ceil(count * kv_heads * ceil(head_dim / 8) / 256)), block 256, dynamic smem 0.

#ifdef __cplusplus
}
#endif
