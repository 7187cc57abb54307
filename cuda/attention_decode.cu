// Attention for a few query rows over many keys: a decode step, a short follow-up query.
//
// The prefill kernels give every query head its own block of 64-192 rows, so one row over
// 128K keys computes a whole tile of rows and reads each KV head's keys once per query head
// that shares it. Here the rows of all query heads that share a KV head are packed into one
// 16-row tile (rows x group <= 16 "packed rows"), so each key and value is read from memory
// once per KV head, and the keys are cut into parts that fill the GPU. The products run on
// tensor cores (mma.sync m16n8k16, bf16 in, fp32 out), so the kernel is bound by reading K
// and V, not by arithmetic.
//
// Grid (parts, kv_heads), 256 threads (8 warps); dynamic shared memory holds the warps'
// outputs for the final merge. Each block walks its part of the keys (the segments laid end to
// end) in steps of 16 keys; warp w takes steps w, w + 8, ... A step is S = Q K^T (two 8-key
// tiles), the online softmax, then O += P V.
//
// Loads straight from global memory into fragments: the dot product does not care in which
// order head dims are summed, nor O += P V in which order keys are, as long as both operands
// agree. So each thread's fragments are made to cover contiguous memory:
//   - Q K^T: thread (g = lane / 4, c = lane % 4) holds Q rows g and g + 8 and key g of each
//     tile at head dims [c, c + 1) x D / 4; k-step s takes dims D/4 c + 4 s + {0, 1} (fragment
//     positions 2c, 2c + 1) and + {2, 3} (positions 2c + 8, 2c + 9);
//   - P V: column n of output tile j is head dim D/8 n + j, so the thread loads V at dims
//     [g, g + 1) x D / 8 of keys 2c, 2c + 1, 2c + 8, 2c + 9 (the keys its P fragment holds)
//     and accumulates O rows g and g + 8 at dims D/4 c + {0, D/8} + j.
// At the end the block merges its warps by their maxima and writes its part's O
// ([rows][q_heads][head_dim] bf16) and LSE (natural log; -inf and O = 0 where the part saw
// nothing); with more than one part the LSE merge (merge.cu) combines them.
//
// Launched only by crates/apb-cuda/src/attention_decode.rs, which checks the shapes (head_dim
// 64 or 128, packed rows <= 16, segments as attention.rs checks them, keys per part a
// multiple of 16). Parameter: apb_decode_params by value; dynamic shared memory
// 8 x 16 x head_dim x 4 + 1024 bytes.
#include "common.cuh"

// layout: apb_decode_params size 216 align 8 q 0 o 8 lse 16 rows 24 keys_per_part 32 q_heads 40 kv_heads 44 segments 48
typedef struct {
  const void* q;  // [rows][q_heads][head_dim] bf16
  void* o;        // parts x [rows][q_heads][head_dim] bf16
  float* lse;     // parts x [rows][q_heads]
  int64_t rows;
  int64_t keys_per_part;  // a multiple of 16; part p walks keys [p, p + 1) x keys_per_part
  int32_t q_heads;
  int32_t kv_heads;
  apb_segment_list segments;
} apb_decode_params;
static_assert(sizeof(apb_decode_params) == 216 && alignof(apb_decode_params) == 8 &&
                  offsetof(apb_decode_params, q) == 0 && offsetof(apb_decode_params, o) == 8 &&
                  offsetof(apb_decode_params, lse) == 16 && offsetof(apb_decode_params, rows) == 24 &&
                  offsetof(apb_decode_params, keys_per_part) == 32 && offsetof(apb_decode_params, q_heads) == 40 &&
                  offsetof(apb_decode_params, kv_heads) == 44 && offsetof(apb_decode_params, segments) == 48,
              "apb_decode_params' layout is mirrored in attention_decode.rs");

namespace {

using apb::lmin;

constexpr int kWarps = 8;
constexpr int kThreads = 32 * kWarps;
constexpr int kRows = 16;      // packed rows: one m16 tile
constexpr int kStepKeys = 16;  // keys a warp takes per step: two 8-key tiles, one P V k-step
constexpr unsigned kAll = 0xffffffffu;
constexpr int kNever = 0x7fffffff;  // first_row of a key no row sees

// Where a lane's key lives: its K and V rows for this KV head (null past the part's end) and
// the first query row that sees it (0 outside the causal segment; a causal segment's row r
// sees its keys up to index count - rows + r).
struct KeyRef {
  const __nv_bfloat16* k;
  const __nv_bfloat16* v;
  int first_row;
};

template <int D>
__device__ __forceinline__ KeyRef locate(const apb_decode_params& p, int64_t key, int64_t end, int kv_head) {
  KeyRef r{nullptr, nullptr, kNever};
  if (key >= end) return r;
  int64_t index = key;
  for (int s = 0; s < p.segments.n; ++s) {
    const apb_segment& seg = p.segments.s[s];
    if (index < seg.count) {
      const int64_t offset = ((seg.start + index) * p.kv_heads + kv_head) * D;
      r.k = static_cast<const __nv_bfloat16*>(seg.k) + offset;
      r.v = static_cast<const __nv_bfloat16*>(seg.v) + offset;
      const int64_t first = seg.causal ? index - (seg.count - p.rows) : 0;
      r.first_row = first <= 0 ? 0 : static_cast<int>(lmin(first, kNever));
      return r;
    }
    index -= seg.count;
  }
  return r;
}

template <typename T>
__device__ __forceinline__ const T* lane_ptr(const T* mine, int lane) {
  return reinterpret_cast<const T*>(__shfl_sync(kAll, reinterpret_cast<uintptr_t>(mine), lane));
}

// N 16-byte vectors from global memory (the read-only path), or zeros for a null row.
template <int N>
__device__ __forceinline__ void load_words(uint4 (&dst)[N], const __nv_bfloat16* row) {
#pragma unroll
  for (int i = 0; i < N; ++i) dst[i] = row ? __ldg(reinterpret_cast<const uint4*>(row) + i) : make_uint4(0, 0, 0, 0);
}

// 32-bit word i (two bf16) of loaded vectors.
__device__ __forceinline__ uint32_t word(const uint4* w, int i) {
  const uint4 q = w[i / 4];
  return (i % 4 == 0) ? q.x : (i % 4 == 1) ? q.y : (i % 4 == 2) ? q.z : q.w;
}

__device__ __forceinline__ float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(kAll, x, 1));
  return fmaxf(x, __shfl_xor_sync(kAll, x, 2));
}
__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(kAll, x, 1);
  return x + __shfl_xor_sync(kAll, x, 2);
}

template <int D>
__device__ __forceinline__ void decode(const apb_decode_params& p) {
  constexpr int kDimVecs = D / 32;  // 16-byte vectors of a thread's D/4 dims (Q, K)
  constexpr int kKSteps = D / 16;   // Q K^T k-steps
  constexpr int kTiles = D / 8;     // P V output tiles
  constexpr int kVVecs = D / 64;    // 16-byte vectors of a thread's D/8 dims of V
  const int part = blockIdx.x, kv_head = blockIdx.y;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, c = lane % 4;
  const int group = p.q_heads / p.kv_heads;
  const int packed = static_cast<int>(p.rows) * group;
  const float scale_log2 = 1.4426950408889634f / sqrtf(static_cast<float>(D));

  // The query rows this thread holds: packed rows g and g + 8 (query row m / group of query
  // head kv_head x group + m % group); rows past `packed` are zeros and see nothing.
  const int row_of[2] = {g < packed ? g / group : -1, g + 8 < packed ? (g + 8) / group : -1};
  uint4 q_words[2][kDimVecs];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int m = g + 8 * h;
    const __nv_bfloat16* row = nullptr;
    if (m < packed) {
      const int64_t head = static_cast<int64_t>(kv_head) * group + m % group;
      row = static_cast<const __nv_bfloat16*>(p.q) + (static_cast<int64_t>(m / group) * p.q_heads + head) * D + c * (D / 4);
    }
    load_words(q_words[h], row);
  }
  uint32_t q_frag[kKSteps][4];
#pragma unroll
  for (int s = 0; s < kKSteps; ++s) {
    q_frag[s][0] = word(q_words[0], 2 * s);
    q_frag[s][1] = word(q_words[1], 2 * s);
    q_frag[s][2] = word(q_words[0], 2 * s + 1);
    q_frag[s][3] = word(q_words[1], 2 * s + 1);
  }

  int64_t total = 0;
  for (int s = 0; s < p.segments.n; ++s) total += p.segments.s[s].count;
  const int64_t begin = static_cast<int64_t>(part) * p.keys_per_part;
  const int64_t end = lmin(total, begin + p.keys_per_part);

  float run_max[2] = {-INFINITY, -INFINITY}, run_sum[2] = {0.f, 0.f};  // run_sum: this thread's share
  float acc[kTiles][4];
#pragma unroll
  for (int j = 0; j < kTiles; ++j) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.f;

  for (int64_t step = begin + kStepKeys * warp; step < end; step += kStepKeys * kWarps) {
    // Lanes l and l + 16 locate key step + l % 16; the others take what they need from them.
    const KeyRef mine = locate<D>(p, step + lane % kStepKeys, end, kv_head);
    // Q K^T operands: key g of tile t. P V operands: keys 2c, 2c + 1, 2c + 8, 2c + 9.
    uint4 k_words[2][kDimVecs];
#pragma unroll
    for (int t = 0; t < 2; ++t) {
      const __nv_bfloat16* k = lane_ptr(mine.k, 8 * t + g);
      load_words(k_words[t], k ? k + c * (D / 4) : nullptr);
    }
    const int pv_key[4] = {2 * c, 2 * c + 1, 2 * c + 8, 2 * c + 9};
    uint4 v_words[4][kVVecs];
    int first_row[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const __nv_bfloat16* v = lane_ptr(mine.v, pv_key[i]);
      load_words(v_words[i], v ? v + g * (D / 8) : nullptr);
      first_row[i] = __shfl_sync(kAll, mine.first_row, pv_key[i]);
    }

    // S for rows g, g + 8 (h) at keys 2c + e of tile t: s[t][2h + e].
    float s[2][4];
#pragma unroll
    for (int t = 0; t < 2; ++t) {
      s[t][0] = s[t][1] = s[t][2] = s[t][3] = 0.f;
#pragma unroll
      for (int ks = 0; ks < kKSteps; ++ks) apb::mma_bf16(s[t], q_frag[ks], word(k_words[t], 2 * ks), word(k_words[t], 2 * ks + 1));
    }

    // Online softmax over the step, per row; keys a row may not see weigh 0.
    uint32_t p_frag[4];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float x[4];
      float step_max = -INFINITY;
#pragma unroll
      for (int t = 0; t < 2; ++t) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const bool seen = row_of[h] >= first_row[2 * t + e];
          x[2 * t + e] = seen ? s[t][2 * h + e] * scale_log2 : -INFINITY;
          step_max = fmaxf(step_max, x[2 * t + e]);
        }
      }
      const float new_max = fmaxf(run_max[h], quad_max(step_max));
      // Nothing seen yet (new_max -inf): nothing to rescale and every probability is 0.
      const float rescale = new_max == -INFINITY ? 1.f : exp2f(run_max[h] - new_max);
      float probs[4], sum = 0.f;
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        probs[i] = x[i] == -INFINITY ? 0.f : exp2f(x[i] - new_max);
        sum += probs[i];
      }
      run_max[h] = new_max;
      run_sum[h] = run_sum[h] * rescale + sum;
#pragma unroll
      for (int j = 0; j < kTiles; ++j) {
        acc[j][2 * h] *= rescale;
        acc[j][2 * h + 1] *= rescale;
      }
      // A fragment: rows g (h 0) / g + 8 (h 1), keys 2c, 2c + 1 (tile 0) and 2c + 8, 2c + 9 (tile 1).
      p_frag[h] = apb::pack_bf16(probs[0], probs[1]);
      p_frag[2 + h] = apb::pack_bf16(probs[2], probs[3]);
    }

    // O += P V: output tile j, column n is head dim D/8 n + j; this thread's B column is g,
    // its rows the keys pv_key (their V words hold dims D/8 g ...).
#pragma unroll
    for (int j = 0; j < kTiles; ++j) {
      const uint32_t sel = (j % 2 == 0) ? 0x5410 : 0x7632;  // the low or high bf16 of each word
      const uint32_t b0 = __byte_perm(word(v_words[0], j / 2), word(v_words[1], j / 2), sel);
      const uint32_t b1 = __byte_perm(word(v_words[2], j / 2), word(v_words[3], j / 2), sel);
      apb::mma_bf16(acc[j], p_frag, b0, b1);
    }
  }

  // Merge the warps: each one's max, sum and output, weighed by exp2(its max - the block's).
  extern __shared__ __align__(16) float smem[];
  float* o_s = smem;                                // [kWarps][kRows][D]
  float* max_s = o_s + kWarps * kRows * D;          // [kWarps][kRows]
  float* sum_s = max_s + kWarps * kRows;            // [kWarps][kRows]
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int m = g + 8 * h;
    const float sum = quad_sum(run_sum[h]);
    if (c == 0) {
      max_s[warp * kRows + m] = run_max[h];
      sum_s[warp * kRows + m] = sum;
    }
    float* out = o_s + (warp * kRows + m) * D + c * (D / 4);
#pragma unroll
    for (int j = 0; j < kTiles; ++j) {
      out[j] = acc[j][2 * h];
      out[D / 8 + j] = acc[j][2 * h + 1];
    }
  }
  __syncthreads();
  __nv_bfloat16* o = static_cast<__nv_bfloat16*>(p.o);
  for (int i = threadIdx.x; i < packed * D; i += kThreads) {
    const int m = i / D, d = i % D;
    float block_max = -INFINITY;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) block_max = fmaxf(block_max, max_s[w * kRows + m]);
    float sum = 0.f, out = 0.f;
    if (block_max != -INFINITY) {
#pragma unroll
      for (int w = 0; w < kWarps; ++w) {
        const float wmax = max_s[w * kRows + m];
        const float weight = wmax == -INFINITY ? 0.f : exp2f(wmax - block_max);
        sum += weight * sum_s[w * kRows + m];
        out += weight * o_s[(w * kRows + m) * D + d];
      }
    }
    const int64_t row = m / group, head = static_cast<int64_t>(kv_head) * group + m % group;
    const int64_t pair = (static_cast<int64_t>(part) * p.rows + row) * p.q_heads + head;
    o[pair * D + d] = __float2bfloat16(sum > 0.f ? out / sum : 0.f);
    // LSE in natural log: the scores were scaled by log2(e).
    if (d == 0) p.lse[pair] = sum > 0.f ? (block_max + log2f(sum)) * 0.6931471805599453f : -INFINITY;
  }
}

}  // namespace

extern "C" __global__ void __launch_bounds__(kThreads, 1) apb_attention_decode_d64(apb_decode_params p) { decode<64>(p); }
extern "C" __global__ void __launch_bounds__(kThreads, 1) apb_attention_decode_d128(apb_decode_params p) { decode<128>(p); }
