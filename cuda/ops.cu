// The element-wise and gather kernels of the decoder (embedding, RMSNorm and the fused
// residual add + RMSNorm, RoPE, SwiGLU, adds, per-head gather) and the query-aware passing
// score. Launched only by crates/apb-cuda/src/ops.rs, which documents each entry's
// parameters and owns its launch shape, and checks shapes first; the semantics are the CPU
// backend's (crates/apb-engine/src/cpu).
//
// Element-wise kernels give each thread a chunk of 8 consecutive elements of one row: one
// 16-byte access when the chunk is whole and the layout allows it (decided per launch, in
// the kernel, so the driver-API caller need not), scalar accesses otherwise.
#include <cuda_bf16.h>
#include <stdint.h>

#include "common.cuh"

namespace {

using namespace apb;
using bf16 = __nv_bfloat16;

constexpr int kThreads = 256;  // ops.rs: THREADS
constexpr int kWarps = kThreads / 32;
constexpr int kChunk = 8;      // ops.rs: CHUNK
constexpr float kLog2e = 1.4426950408889634f;

// ---- Chunk access -------------------------------------------------------------------------

__device__ __forceinline__ bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

// Rounds like a bf16 store followed by a load: what an unfused op's output holds.
__device__ __forceinline__ float round_bf16(float v) { return __bfloat162float(__float2bfloat16_rn(v)); }

// `count` (1..8) values from p as fp32, the rest 0; `vec`: one 16-byte load (count == 8,
// p aligned).
__device__ __forceinline__ void load8(const bf16* p, int count, bool vec, float (&v)[kChunk]) {
  if (vec) {
    const uint4 raw = *reinterpret_cast<const uint4*>(p);
    const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&raw);
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const float2 f = __bfloat1622float2(h[e]);
      v[2 * e] = f.x;
      v[2 * e + 1] = f.y;
    }
  } else {
#pragma unroll
    for (int e = 0; e < kChunk; ++e) v[e] = e < count ? __bfloat162float(p[e]) : 0.f;
  }
}

__device__ __forceinline__ void store8(bf16* p, int count, bool vec, const float (&v)[kChunk]) {
  if (vec) {
    uint4 raw;
    raw.x = pack_bf16(v[0], v[1]);
    raw.y = pack_bf16(v[2], v[3]);
    raw.z = pack_bf16(v[4], v[5]);
    raw.w = pack_bf16(v[6], v[7]);
    *reinterpret_cast<uint4*>(p) = raw;
  } else {
#pragma unroll
    for (int e = 0; e < kChunk; ++e)
      if (e < count) p[e] = __float2bfloat16_rn(v[e]);
  }
}

// This thread's chunk of a [rows][width] grid of chunks: false past the end.
struct Chunk {
  int64_t row;
  int64_t col;  // first element within the row
  int count;    // elements in this chunk, 1..8
};

__device__ __forceinline__ bool my_chunk(int64_t rows, int64_t width, Chunk& c) {
  const int64_t chunks = (width + kChunk - 1) / kChunk;
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= rows * chunks) return false;
  c.row = t / chunks;
  c.col = (t % chunks) * kChunk;
  c.count = static_cast<int>(lmin(kChunk, width - c.col));
  return true;
}

// Sum over the block, the same value in every thread; a fixed order, so deterministic.
// Uses `scratch` once: call it once per kernel.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
#pragma unroll
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffff, v, o);
  if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = v;
  __syncthreads();
  float total = 0.f;
#pragma unroll
  for (int w = 0; w < kWarps; ++w) total += scratch[w];
  return total;
}

}  // namespace

// ---- Embedding ----------------------------------------------------------------------------

extern "C" __global__ void __launch_bounds__(kThreads)
    apb_embed_bf16_kernel(const bf16* table, int64_t vocab, int64_t hidden, const uint32_t* ids, int64_t rows,
                          bf16* out, int32_t* bad_ids) {
  Chunk c;
  if (!my_chunk(rows, hidden, c)) return;
  const bool vec = hidden % kChunk == 0 && aligned16(table) && aligned16(out) && c.count == kChunk;
  const int64_t id = ids[c.row];
  float v[kChunk];
  if (id < vocab) {
    load8(table + id * hidden + c.col, c.count, vec, v);
  } else {
#pragma unroll
    for (int e = 0; e < kChunk; ++e) v[e] = 0.f;
    if (bad_ids && c.col == 0) atomicAdd(bad_ids, 1);  // once per row
  }
  store8(out + c.row * hidden + c.col, c.count, vec, v);
}

// ---- RMSNorm ------------------------------------------------------------------------------

namespace {

// Rows up to 256 threads x 4 chunks x 8 = 8192 wide (and 16-byte accessible) stay in
// registers between the sum of squares and the scaling; more chunks per thread would cost
// occupancy on every width, as registers are allocated for the largest case.
constexpr int kNormChunksPerThread = 4;

// One row: x = bf16(x + delta) first when kAdd (x is the residual, updated in place), then
// out = x / sqrt(mean(x^2) + eps) * w.
template <bool kAdd>
__device__ __forceinline__ void rms_norm_row(bf16* x, const bf16* delta, const bf16* w, bf16* out, int hidden,
                                             float eps) {
  __shared__ float scratch[kWarps];
  const bool vec =
      hidden % kChunk == 0 && aligned16(x) && aligned16(w) && aligned16(out) && (!kAdd || aligned16(delta));
  float sum_sq = 0.f;
  if (vec && hidden <= kThreads * kChunk * kNormChunksPerThread) {
    float v[kNormChunksPerThread][kChunk];
#pragma unroll
    for (int i = 0; i < kNormChunksPerThread; ++i) {
      const int col = (threadIdx.x + i * kThreads) * kChunk;
      if (col >= hidden) continue;
      load8(x + col, kChunk, true, v[i]);
      if (kAdd) {
        float d[kChunk];
        load8(delta + col, kChunk, true, d);
#pragma unroll
        for (int e = 0; e < kChunk; ++e) v[i][e] = round_bf16(v[i][e] + d[e]);
        store8(x + col, kChunk, true, v[i]);
      }
#pragma unroll
      for (int e = 0; e < kChunk; ++e) sum_sq += v[i][e] * v[i][e];
    }
    const float inv = rsqrtf(block_sum(sum_sq, scratch) / hidden + eps);
#pragma unroll
    for (int i = 0; i < kNormChunksPerThread; ++i) {
      const int col = (threadIdx.x + i * kThreads) * kChunk;
      if (col >= hidden) continue;
      float g[kChunk];
      load8(w + col, kChunk, true, g);
#pragma unroll
      for (int e = 0; e < kChunk; ++e) v[i][e] = v[i][e] * inv * g[e];
      store8(out + col, kChunk, true, v[i]);
    }
  } else {
    // Wider rows, or any width and alignment: two passes over memory (the second mostly from
    // cache); each thread rereads only the chunks it wrote itself.
    for (int col = threadIdx.x * kChunk; col < hidden; col += kThreads * kChunk) {
      const int count = min(kChunk, hidden - col);
      float v[kChunk];
      load8(x + col, count, vec, v);
      if (kAdd) {
        float d[kChunk];
        load8(delta + col, count, vec, d);
#pragma unroll
        for (int e = 0; e < kChunk; ++e) v[e] = round_bf16(v[e] + d[e]);
        store8(x + col, count, vec, v);
      }
#pragma unroll
      for (int e = 0; e < kChunk; ++e) sum_sq += v[e] * v[e];  // zeros past `count`
    }
    const float inv = rsqrtf(block_sum(sum_sq, scratch) / hidden + eps);
    for (int col = threadIdx.x * kChunk; col < hidden; col += kThreads * kChunk) {
      const int count = min(kChunk, hidden - col);
      float v[kChunk], g[kChunk];
      load8(x + col, count, vec, v);
      load8(w + col, count, vec, g);
#pragma unroll
      for (int e = 0; e < kChunk; ++e) v[e] = v[e] * inv * g[e];
      store8(out + col, count, vec, v);
    }
  }
}

}  // namespace

extern "C" __global__ void __launch_bounds__(kThreads)
    apb_rms_norm_bf16_kernel(const bf16* x, const bf16* w, bf16* out, int64_t rows, int32_t hidden, float eps) {
  const int64_t row = blockIdx.x;
  if (row >= rows) return;
  // kAdd is false: x is only read.
  rms_norm_row<false>(const_cast<bf16*>(x) + row * hidden, nullptr, w, out + row * hidden, hidden, eps);
}

extern "C" __global__ void __launch_bounds__(kThreads)
    apb_add_rms_norm_bf16_kernel(bf16* residual, const bf16* delta, const bf16* w, bf16* out, int64_t rows,
                                 int32_t hidden, float eps) {
  const int64_t row = blockIdx.x;
  if (row >= rows) return;
  rms_norm_row<true>(residual + row * hidden, delta + row * hidden, w, out + row * hidden, hidden, eps);
}

// ---- RoPE ---------------------------------------------------------------------------------

namespace {

constexpr int kRopeRows = 4;        // ops.rs: ROPE_ROWS_PER_BLOCK
constexpr int kRopeMaxHalf = 512 / 2;  // ops.rs: ROPE_MAX_HEAD_DIM

// cos and sin of pos * inv_freq as fp32, from fp64 throughout: --use_fast_math turns fp32
// sinf into __sinf, whose error grows with the argument (positions reach 2^20), and an fp32
// angle alone is off by up to 2^20 * 2^-24 rad. The angle is reduced to [-pi, pi] with 2 pi
// in two parts (the fma's keep k * 2 pi exact); sincospi of r / pi then needs no further
// reduction (sincos would carry a never-taken slow path with a stack frame).
__device__ __forceinline__ void rope_cos_sin(uint32_t pos, double inv_freq, float& c, float& s) {
  constexpr double kTwoPiHi = 6.283185307179586;       // 2 pi rounded to fp64
  constexpr double kTwoPiLo = 2.4492935982947064e-16;  // 2 pi - kTwoPiHi
  constexpr double kInvTwoPi = 0.15915494309189535;
  constexpr double kInvPi = 0.3183098861837907;
  const double angle = static_cast<double>(pos) * inv_freq;
  const double k = rint(angle * kInvTwoPi);
  const double r = fma(-k, kTwoPiLo, fma(-k, kTwoPiHi, angle));
  double sd, cd;
  sincospi(r * kInvPi, &sd, &cd);
  c = static_cast<float>(cd);
  s = static_cast<float>(sd);
}

// Rotates the block's rows, V (8 or 1) pairs of elements per item.
template <int V>
__device__ __forceinline__ void rope_rows(bf16* x, int64_t row0, int64_t rows, int heads, int head_dim,
                                          int64_t row_stride, const float (&cos_t)[kRopeRows][kRopeMaxHalf],
                                          const float (&sin_t)[kRopeRows][kRopeMaxHalf]) {
  const int half = head_dim / 2;
  const int chunks = half / V;
  const int items = kRopeRows * heads * chunks;
  for (int item = threadIdx.x; item < items; item += kThreads) {
    const int r = item / (heads * chunks);
    const int head = (item / chunks) % heads;
    const int i0 = (item % chunks) * V;
    const int64_t row = row0 + r;
    if (row >= rows) continue;
    bf16* a = x + row * row_stride + static_cast<int64_t>(head) * head_dim + i0;
    bf16* b = a + half;
    float va[kChunk], vb[kChunk];
    load8(a, V, V == kChunk, va);
    load8(b, V, V == kChunk, vb);
#pragma unroll
    for (int e = 0; e < V; ++e) {
      const float c = cos_t[r][i0 + e], s = sin_t[r][i0 + e];
      const float x1 = va[e], x2 = vb[e];
      va[e] = x1 * c - x2 * s;
      vb[e] = x2 * c + x1 * s;
    }
    store8(a, V, V == kChunk, va);
    store8(b, V, V == kChunk, vb);
  }
}

}  // namespace

extern "C" __global__ void __launch_bounds__(kThreads)
    apb_rope_bf16_kernel(bf16* x, const uint32_t* positions, const double* inv_freq, int64_t rows, int32_t heads,
                         int32_t head_dim, int64_t row_stride) {
  // Each row's cos and sin are shared by all its heads: computed once per block.
  __shared__ float cos_t[kRopeRows][kRopeMaxHalf];
  __shared__ float sin_t[kRopeRows][kRopeMaxHalf];
  const int half = head_dim / 2;
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * kRopeRows;
  for (int i = threadIdx.x; i < kRopeRows * half; i += kThreads) {
    const int r = i / half, f = i % half;
    if (row0 + r < rows) rope_cos_sin(positions[row0 + r], inv_freq[f], cos_t[r][f], sin_t[r][f]);
  }
  __syncthreads();
  if (half % kChunk == 0 && row_stride % kChunk == 0 && aligned16(x))
    rope_rows<kChunk>(x, row0, rows, heads, head_dim, row_stride, cos_t, sin_t);
  else
    rope_rows<1>(x, row0, rows, heads, head_dim, row_stride, cos_t, sin_t);
}

// ---- SwiGLU, adds -------------------------------------------------------------------------

namespace {

// silu(g) = g / (1 + exp(-g)), as the CPU backend writes it.
__device__ __forceinline__ float silu(float g) { return g / (1.f + __expf(-g)); }

}  // namespace

extern "C" __global__ void __launch_bounds__(kThreads)
    apb_silu_mul_bf16_kernel(const bf16* gate, int64_t gate_stride, const bf16* up, int64_t up_stride, bf16* out,
                             int64_t out_stride, int64_t rows, int64_t width) {
  Chunk c;
  if (!my_chunk(rows, width, c)) return;
  const bool vec = c.count == kChunk && gate_stride % kChunk == 0 && up_stride % kChunk == 0 &&
                   out_stride % kChunk == 0 && aligned16(gate) && aligned16(up) && aligned16(out);
  float g[kChunk], u[kChunk];
  load8(gate + c.row * gate_stride + c.col, c.count, vec, g);
  load8(up + c.row * up_stride + c.col, c.count, vec, u);
#pragma unroll
  for (int e = 0; e < kChunk; ++e) g[e] = silu(g[e]) * u[e];
  store8(out + c.row * out_stride + c.col, c.count, vec, g);
}

extern "C" __global__ void __launch_bounds__(kThreads) apb_silu_bf16_kernel(bf16* x, int64_t n) {
  Chunk c;
  if (!my_chunk(1, n, c)) return;
  const bool vec = c.count == kChunk && aligned16(x);
  float v[kChunk];
  load8(x + c.col, c.count, vec, v);
#pragma unroll
  for (int e = 0; e < kChunk; ++e) v[e] = silu(v[e]);
  store8(x + c.col, c.count, vec, v);
}

extern "C" __global__ void __launch_bounds__(kThreads) apb_add_bf16_kernel(bf16* x, const bf16* y, int64_t n) {
  Chunk c;
  if (!my_chunk(1, n, c)) return;
  const bool vec = c.count == kChunk && aligned16(x) && aligned16(y);
  float a[kChunk], b[kChunk];
  load8(x + c.col, c.count, vec, a);
  load8(y + c.col, c.count, vec, b);
#pragma unroll
  for (int e = 0; e < kChunk; ++e) a[e] += b[e];
  store8(x + c.col, c.count, vec, a);
}

extern "C" __global__ void __launch_bounds__(kThreads)
    apb_add_bias_bf16_kernel(bf16* x, const bf16* bias, int64_t rows, int64_t width) {
  Chunk c;
  if (!my_chunk(rows, width, c)) return;
  const bool vec = c.count == kChunk && width % kChunk == 0 && aligned16(x) && aligned16(bias);
  float a[kChunk], b[kChunk];
  load8(x + c.row * width + c.col, c.count, vec, a);
  load8(bias + c.col, c.count, vec, b);
#pragma unroll
  for (int e = 0; e < kChunk; ++e) a[e] += b[e];
  store8(x + c.row * width + c.col, c.count, vec, a);
}

// ---- Gathering each KV head's picked tokens -----------------------------------------------

extern "C" __global__ void __launch_bounds__(kThreads)
    apb_gather_per_head_bf16_kernel(const bf16* kv, int64_t n, int32_t kv_heads, int32_t head_dim,
                                    const uint32_t* picked, int64_t count, bf16* out, int32_t* bad_ids) {
  // Rows of the grid are (i, head) in out's order, so the writes are contiguous.
  Chunk c;
  if (!my_chunk(count * kv_heads, head_dim, c)) return;
  const int64_t i = c.row / kv_heads;
  const int head = static_cast<int>(c.row % kv_heads);
  const bool vec = c.count == kChunk && head_dim % kChunk == 0 && aligned16(kv) && aligned16(out);
  const int64_t token = picked[static_cast<int64_t>(head) * count + i];
  float v[kChunk];
  if (token < n) {
    load8(kv + (token * kv_heads + head) * head_dim + c.col, c.count, vec, v);
  } else {
#pragma unroll
    for (int e = 0; e < kChunk; ++e) v[e] = 0.f;
    if (bad_ids && c.col == 0) atomicAdd(bad_ids, 1);  // once per (i, head)
  }
  store8(out + c.row * head_dim + c.col, c.count, vec, v);
}

// ---- Query-aware passing score ------------------------------------------------------------
//
// scores[g][j] = sum over query rows r and heads h of g's group of
// exp(q[r][h] . k[j][g] / sqrt(head_dim) - lse[r][h]) (cpu/select.rs: query_scores), with lse
// any natural-log LSE over the same keys (attention's). The kernel sees, for KV head g,
// "pairs" p = (query row r, head g * group + p % group) with r = p / group: the query vectors
// whose softmax runs over g's keys. Logits are scaled into log2 units (exp2 is the hardware's
// exponential). Tensor cores (mma.sync) and no float atomics: the result is deterministic.

namespace {

constexpr int kPad = 8;  // bf16 elements of padding per smem row: ldmatrix rows hit distinct banks



// 4 bytes global -> shared (only issued for valid sources).
__device__ __forceinline__ void cp_async4(uint32_t dst, const void* src) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(dst), "l"(src));
}

// Where pair p of KV head g sits in q (times head_dim) and in lse: r * q_heads + h.
__device__ __forceinline__ int64_t pair_index(int64_t p, int group, int q_heads, int g) {
  return (p / group) * q_heads + static_cast<int64_t>(g) * group + p % group;
}

// Pairs p0 .. p0 + kRows - 1 (those < pairs; the rest zero) into a [kRows][D + kPad] tile.
template <int D, int kRows, int kBlockThreads>
__device__ __forceinline__ void load_pairs(bf16* tile, const bf16* q, int64_t p0, int64_t pairs, int group,
                                           int q_heads, int g) {
  constexpr int kPieces = D / 8;  // 16-byte pieces per row
  for (int c = threadIdx.x; c < kRows * kPieces; c += kBlockThreads) {
    const int r = c / kPieces, col = (c % kPieces) * 8;
    const bool valid = p0 + r < pairs;
    const bf16* src = valid ? q + pair_index(p0 + r, group, q_heads, g) * D + col : q;
    cp_async16(smem_addr(tile + r * (D + kPad) + col), src, valid);
  }
}

// Rows first .. first + kRows - 1 of one head's keys (those < `valid_rows` past `first`; the
// rest zero) into a [kRows][D + kPad] tile; `src` points at key 0 of the head.
template <int D, int kRows, int kBlockThreads>
__device__ __forceinline__ void load_keys(bf16* tile, const bf16* src, int64_t first, int64_t valid_rows,
                                          int64_t row_stride) {
  constexpr int kPieces = D / 8;
  for (int c = threadIdx.x; c < kRows * kPieces; c += kBlockThreads) {
    const int r = c / kPieces, col = (c % kPieces) * 8;
    const bool valid = r < valid_rows;
    cp_async16(smem_addr(tile + r * (D + kPad) + col), valid ? src + (first + r) * row_stride + col : src, valid);
  }
}

// -- Scores: a block holds 256 keys of one KV head as mma A operands in registers (8 warps x
// 2 m16 tiles) and streams the head's pairs through shared memory, 64 at a time, double-
// buffered; each key's sum over the pairs stays in the registers of the lanes that hold it.
constexpr int kScoreWarps = 8;
constexpr int kScoreThreads = kScoreWarps * 32;
constexpr int kScoreMTiles = 2;
constexpr int kScoreKeys = 16 * kScoreMTiles * kScoreWarps;
constexpr int kScorePairs = 64;
static_assert(kScoreKeys == 256 && kScoreThreads == 256 && kPad == 8,
              "ops.rs launches 256 threads per 256 keys with (256 * (head_dim + 8) * 2) bytes of shared memory");

template <int D>
__device__ __forceinline__ void query_scores_body(const bf16* __restrict__ q, const float* __restrict__ lse,
                                                  const bf16* __restrict__ k, float* __restrict__ scores,
                                                  int64_t q_rows, int q_heads, int kv_heads, int64_t n) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  constexpr int kStride = D + kPad;
  // The key tile is needed only until it sits in registers; then the same memory holds the
  // pair buffers.
  bf16* sK = reinterpret_cast<bf16*>(smem_raw);         // [kScoreKeys][kStride]
  bf16* sQ = reinterpret_cast<bf16*>(smem_raw);         // [2][kScorePairs][kStride]
  float* sL = reinterpret_cast<float*>(sQ + 2 * kScorePairs * kStride);  // [2][kScorePairs]
  static_assert(2 * kScorePairs * kStride * 2 + 2 * kScorePairs * 4 <= kScoreKeys * kStride * 2, "pair buffers fit");

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = blockIdx.y, group = q_heads / kv_heads;
  const int64_t pairs = q_rows * group;
  const int64_t key0 = static_cast<int64_t>(blockIdx.x) * kScoreKeys;
  const int64_t kv_stride = static_cast<int64_t>(kv_heads) * D;
  const float scale = kLog2e / sqrtf(static_cast<float>(D));
  const int warp_key = warp * 16 * kScoreMTiles;

  load_keys<D, kScoreKeys, kScoreThreads>(sK, k + static_cast<int64_t>(g) * D, key0, n - key0, kv_stride);
  cp_async_commit();
  cp_async_wait<0>();
  __syncthreads();
  uint32_t a[kScoreMTiles][D / 16][4];
#pragma unroll
  for (int mt = 0; mt < kScoreMTiles; ++mt)
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      const int r = warp_key + mt * 16 + (lane % 8) + ((lane / 8) % 2) * 8;
      ldmatrix_x4(a[mt][kk], sK + r * kStride + kk * 16 + (lane / 16) * 8);
    }
  __syncthreads();  // the key tile is in registers: its memory now holds pairs

  auto issue = [&](int64_t step, int buf) {
    const int64_t first = step * kScorePairs;
    load_pairs<D, kScorePairs, kScoreThreads>(sQ + buf * kScorePairs * kStride, q, first, pairs, group, q_heads, g);
    for (int c = threadIdx.x; c < kScorePairs; c += kScoreThreads)
      if (first + c < pairs)
        cp_async4(smem_addr(sL + buf * kScorePairs + c), lse + pair_index(first + c, group, q_heads, g));
  };

  float acc[kScoreMTiles][2] = {};  // per key: lane / 4 and lane / 4 + 8 of each m16 tile
  const int64_t steps = (pairs + kScorePairs - 1) / kScorePairs;
  if (steps > 0) issue(0, 0);
  cp_async_commit();
  for (int64_t step = 0; step < steps; ++step) {
    const int buf = static_cast<int>(step & 1);
    if (step + 1 < steps) issue(step + 1, buf ^ 1);  // read last in step - 1, which ended on a barrier
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    const bf16* tile = sQ + buf * kScorePairs * kStride;
    const float* tile_lse = sL + buf * kScorePairs;
    const int64_t valid = pairs - step * kScorePairs;
#pragma unroll
    for (int j = 0; j < kScorePairs / 8; j += 2) {  // two n8 tiles of pairs at a time
      float s[kScoreMTiles][2][4] = {};
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        uint32_t b[4];
        const int pr = j * 8 + (lane % 8) + (lane / 16) * 8;
        ldmatrix_x4(b, tile + pr * kStride + kk * 16 + ((lane / 8) % 2) * 8);
#pragma unroll
        for (int mt = 0; mt < kScoreMTiles; ++mt) {
          mma_bf16(s[mt][0], a[mt][kk], b[0], b[1]);
          mma_bf16(s[mt][1], a[mt][kk], b[2], b[3]);
        }
      }
#pragma unroll
      for (int jn = 0; jn < 2; ++jn)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int pr = (j + jn) * 8 + (lane % 4) * 2 + e;
          // A pair past the end weighs exp2(-inf) = 0.
          const float lse_log2 = pr < valid ? tile_lse[pr] * kLog2e : INFINITY;
#pragma unroll
          for (int mt = 0; mt < kScoreMTiles; ++mt)
#pragma unroll
            for (int h = 0; h < 2; ++h) acc[mt][h] += exp2f(s[mt][jn][h * 2 + e] * scale - lse_log2);
        }
    }
    __syncthreads();  // every warp is done with this buffer before it is refilled
  }
  cp_async_wait<0>();

#pragma unroll
  for (int mt = 0; mt < kScoreMTiles; ++mt)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float v = acc[mt][h];
      v += __shfl_xor_sync(0xffffffff, v, 1);
      v += __shfl_xor_sync(0xffffffff, v, 2);
      const int64_t key = key0 + warp_key + mt * 16 + lane / 4 + h * 8;
      if (key < n && lane % 4 == 0) scores[static_cast<int64_t>(g) * n + key] = v;
    }
}

}  // namespace

extern "C" __global__ void __launch_bounds__(kScoreThreads, 2)
    apb_query_scores_d64(const bf16* q, const float* lse, const bf16* k, float* scores, int64_t q_rows,
                         int32_t q_heads, int32_t kv_heads, int64_t n) {
  query_scores_body<64>(q, lse, k, scores, q_rows, q_heads, kv_heads, n);
}

extern "C" __global__ void __launch_bounds__(kScoreThreads, 2)
    apb_query_scores_d128(const bf16* q, const float* lse, const bf16* k, float* scores, int64_t q_rows,
                          int32_t q_heads, int32_t kv_heads, int64_t n) {
  query_scores_body<128>(q, lse, k, scores, q_rows, q_heads, kv_heads, n);
}

// ---- Choosing the passing block ------------------------------------------------------------
//
// The scores max-pooled along the sequence (kernel 5, stride 1, padding ignored; NaN never
// wins), then, per KV head, the `count` best tokens outside [ex_lo, ex_hi), ties to the earlier
// token, written in ascending token order (cpu: passing.rs max_pool5 + top_k). One block of
// 1024 threads per KV head: a radix select over 32-bit keys finds the count-th best key in
// four passes of 8 bits, then the block writes the tokens above it, and the earliest of those
// equal to it, in token order through two block-wide prefix sums. The keys are computed once
// into shared memory where they fit; a longer row recomputes them from the scores (in L2) on
// every pass, so any n works.

namespace {

constexpr int kSelectThreads = 1024;

// A score's place in a total order as an unsigned key, larger for better; NaN as -inf. An
// excluded token's key is 0, below every real score's.
__device__ __forceinline__ uint32_t select_key(const float* row, int64_t n, int64_t j, int64_t ex_lo, int64_t ex_hi) {
  if (j >= ex_lo && j < ex_hi) return 0u;
  float m = -INFINITY;
  const int64_t lo = j >= 2 ? j - 2 : 0, hi = j + 3 < n ? j + 3 : n;
  for (int64_t i = lo; i < hi; ++i) m = fmaxf(m, row[i]);  // fmaxf drops a NaN operand
  const uint32_t bits = __float_as_uint(m);
  return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

// Exclusive prefix sum of one int per thread across the block (1024 threads, 32 warps).
__device__ __forceinline__ int64_t block_exclusive_scan(int64_t v, int64_t* warp_sums, int64_t* total) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  int64_t x = v;
#pragma unroll
  for (int d = 1; d < 32; d *= 2) {
    const int64_t y = __shfl_up_sync(0xffffffff, x, d);
    if (lane >= d) x += y;
  }
  if (lane == 31) warp_sums[warp] = x;
  __syncthreads();
  if (warp == 0) {
    int64_t s = warp_sums[lane];
#pragma unroll
    for (int d = 1; d < 32; d *= 2) {
      const int64_t y = __shfl_up_sync(0xffffffff, s, d);
      if (lane >= d) s += y;
    }
    warp_sums[lane] = s;  // inclusive over warps
    if (lane == 31) *total = s;
  }
  __syncthreads();
  const int64_t before = (warp > 0 ? warp_sums[warp - 1] : 0) + x - v;
  __syncthreads();  // warp_sums is reused by the next scan
  return before;
}

// Adds one to hist[bin] for every lane of the warp that holds `bin` (active lanes only):
// one shared-memory atomic per distinct bin instead of one per lane, since a block's keys
// crowd into a few bins of their high bits.
__device__ __forceinline__ void count_bin(unsigned int* hist, uint32_t bin, bool active) {
  const unsigned int voters = __ballot_sync(0xffffffff, active);
  if (!active) return;
  const unsigned int same = __match_any_sync(voters, bin);
  if ((__ffs(same) - 1) == static_cast<int>(threadIdx.x % 32)) atomicAdd(&hist[bin], __popc(same));
}

}  // namespace

// Dynamic shared memory: n * 4 bytes to hold the keys (computed once), or 0 to recompute them
// from the scores on every pass (a row longer than the launcher's shared-memory budget).
extern "C" __global__ void __launch_bounds__(kSelectThreads)
    apb_passing_select_kernel(const float* scores, int64_t n, int64_t ex_lo, int64_t ex_hi, int64_t count,
                              uint32_t* picked, int32_t keys_in_smem) {
  __shared__ unsigned int hist[256];
  __shared__ int64_t warp_sums[32];
  __shared__ int64_t total;
  __shared__ uint32_t chosen_prefix;
  __shared__ int64_t still_needed;
  extern __shared__ uint32_t keys[];
  const float* row = scores + static_cast<int64_t>(blockIdx.x) * n;
  uint32_t* out = picked + static_cast<int64_t>(blockIdx.x) * count;
  if (keys_in_smem) {
    for (int64_t j = threadIdx.x; j < n; j += kSelectThreads) keys[j] = select_key(row, n, j, ex_lo, ex_hi);
    __syncthreads();
  }
  auto key_of = [&](int64_t j) { return keys_in_smem ? keys[j] : select_key(row, n, j, ex_lo, ex_hi); };

  // The count-th best key, 8 bits at a time: `needed` of the keys that share the prefix so far.
  uint32_t prefix = 0, mask = 0;
  int64_t needed = count;
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int b = threadIdx.x; b < 256; b += kSelectThreads) hist[b] = 0;
    __syncthreads();
    // Every lane takes the same number of turns, so the warp votes together.
    const int64_t turns = (n + kSelectThreads - 1) / kSelectThreads;
    for (int64_t t = 0; t < turns; ++t) {
      const int64_t j = t * kSelectThreads + threadIdx.x;
      const uint32_t key = j < n ? key_of(j) : 0u;
      count_bin(hist, (key >> shift) & 255u, j < n && (key & mask) == prefix);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      int64_t above = 0;
      int b = 255;
      for (; b > 0 && above + hist[b] < needed; --b) above += hist[b];
      chosen_prefix = prefix | (static_cast<uint32_t>(b) << shift);
      still_needed = needed - above;
    }
    __syncthreads();
    prefix = chosen_prefix;
    needed = still_needed;
    mask |= 255u << shift;
  }
  // `prefix` is the count-th best key; take every key above it and the first `needed` equal.
  const int64_t chunk = (n + kSelectThreads - 1) / kSelectThreads;
  const int64_t first = static_cast<int64_t>(threadIdx.x) * chunk;
  const int64_t last = first + chunk < n ? first + chunk : n;
  int64_t above = 0, equal = 0;
  for (int64_t j = first; j < last; ++j) {
    const uint32_t key = key_of(j);
    above += key > prefix;
    equal += key == prefix;
  }
  const int64_t equal_before = block_exclusive_scan(equal, warp_sums, &total);
  int64_t take_equal = needed - equal_before;
  take_equal = take_equal < 0 ? 0 : (take_equal > equal ? equal : take_equal);
  int64_t at = block_exclusive_scan(above + take_equal, warp_sums, &total);
  for (int64_t j = first; j < last; ++j) {
    const uint32_t key = key_of(j);
    if (key > prefix || (key == prefix && take_equal > 0)) {
      if (key == prefix) --take_equal;
      out[at++] = static_cast<uint32_t>(j);
    }
  }
}
