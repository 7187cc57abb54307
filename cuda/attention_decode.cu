// Attention for a few query rows over many keys: a decode step, a short follow-up query.
//
// The prefill kernels give every query head its own block of 64-192 rows, so one row over
// 128K keys computes a whole tile of rows and reads each KV head's keys once per query head
// that shares it. Here the rows of all query heads that share a KV head are packed together
// (rows x group <= 8 "packed rows"), so each key and value is read from memory once per KV
// head, and the keys are cut into parts that fill the GPU. With at most 8 packed rows the
// work is bound by reading K and V, so it runs on CUDA cores with fp32 arithmetic.
//
// Grid (parts, kv_heads), 256 threads (8 warps), static shared memory only. Each block walks
// its part of the keys (the segments laid end to end) in chunks of 32 keys, one key per lane;
// warp w takes chunks w, w + 8, ... A lane loads its key's K row and computes that key's
// score for every packed row; the warp's running max, sum and output follow the online
// softmax; each lane owns head_dim / 32 of the output's columns and adds the chunk's 32 values
// into them. At the end the block merges its warps by their maxima and writes its part's O
// ([rows][q_heads][head_dim] bf16) and LSE (natural log, -inf and O = 0 where the part saw
// nothing); with more than one part the LSE merge (merge.cu) combines them.
//
// Launched only by crates/apb-cuda/src/attention_decode.rs, which checks the shapes (head_dim
// 64 or 128, packed rows <= the variant's, segments as attention.rs checks them, keys per
// part a multiple of 32). Parameter: apb_decode_params by value.
#include <type_traits>

#include "common.cuh"

// layout: apb_decode_params size 216 align 8 q 0 o 8 lse 16 rows 24 keys_per_part 32 q_heads 40 kv_heads 44 segments 48
typedef struct {
  const void* q;  // [rows][q_heads][head_dim] bf16
  void* o;        // parts x [rows][q_heads][head_dim] bf16
  float* lse;     // parts x [rows][q_heads]
  int64_t rows;
  int64_t keys_per_part;  // a multiple of 32; part p walks keys [p, p + 1) x keys_per_part
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
constexpr unsigned kAll = 0xffffffffu;

// Where a lane's key lives: its K and V rows for this KV head (null past the part's end), its
// index in its segment, and the causal limit: query row r sees the key when the index is at
// most `limit + r` (a limit no index reaches outside the causal segment).
struct KeyRef {
  const __nv_bfloat16* k;
  const __nv_bfloat16* v;
  int64_t index;
  int64_t limit;
};

template <int D>
__device__ __forceinline__ KeyRef locate(const apb_decode_params& p, int64_t key, int64_t end, int kv_head) {
  KeyRef r{nullptr, nullptr, 0, INT64_MAX / 2};
  if (key >= end) return r;
  int64_t index = key;
  for (int s = 0; s < p.segments.n; ++s) {
    const apb_segment& seg = p.segments.s[s];
    if (index < seg.count) {
      const int64_t offset = ((seg.start + index) * p.kv_heads + kv_head) * D;
      r.k = static_cast<const __nv_bfloat16*>(seg.k) + offset;
      r.v = static_cast<const __nv_bfloat16*>(seg.v) + offset;
      r.index = index;
      if (seg.causal) r.limit = seg.count - p.rows;
      return r;
    }
    index -= seg.count;
  }
  return r;
}

__device__ __forceinline__ float warp_max(float x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(kAll, x, o));
  return x;
}
__device__ __forceinline__ float warp_sum(float x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(kAll, x, o);
  return x;
}

// D: head_dim; M: packed rows this variant holds (the launcher picks M >= rows x group).
template <int D, int M>
__device__ __forceinline__ void decode(const apb_decode_params& p) {
  constexpr int kCols = D / 32;  // output columns per lane
  const int part = blockIdx.x, kv_head = blockIdx.y;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int group = p.q_heads / p.kv_heads;
  const int packed = static_cast<int>(p.rows) * group;

  __shared__ __align__(16) float q_s[M][D];      // scaled into the exp2 domain
  __shared__ __align__(16) float p_s[kWarps][M][32];  // a chunk's probabilities, per warp
  __shared__ __align__(16) float o_s[kWarps][M][D];   // each warp's output at the end
  __shared__ float max_s[kWarps][M], sum_s[kWarps][M];

  // Packed row m is query row m / group of query head kv_head x group + m % group.
  const float scale_log2 = 1.4426950408889634f / sqrtf(static_cast<float>(D));
  const __nv_bfloat16* q = static_cast<const __nv_bfloat16*>(p.q);
  for (int i = threadIdx.x; i < M * D; i += kThreads) {
    const int m = i / D, d = i % D;
    float x = 0.f;
    if (m < packed) {
      const int64_t row = m / group, head = kv_head * group + m % group;
      x = __bfloat162float(q[(row * p.q_heads + head) * D + d]) * scale_log2;
    }
    q_s[m][d] = x;
  }
  __syncthreads();

  int64_t total = 0;
  for (int s = 0; s < p.segments.n; ++s) total += p.segments.s[s].count;
  const int64_t begin = static_cast<int64_t>(part) * p.keys_per_part;
  const int64_t end = lmin(total, begin + p.keys_per_part);

  float run_max[M], run_sum[M], acc[M][kCols];
#pragma unroll
  for (int m = 0; m < M; ++m) {
    run_max[m] = -INFINITY;
    run_sum[m] = 0.f;  // this lane's share; the warp's lanes are added at the end
#pragma unroll
    for (int c = 0; c < kCols; ++c) acc[m][c] = 0.f;
  }

  for (int64_t chunk = begin + 32 * warp; chunk < end; chunk += 32 * kWarps) {
    const KeyRef mine = locate<D>(p, chunk + lane, end, kv_head);
    // Every load of the chunk is issued before any is used: the lane's K row, and this lane's
    // columns of the 32 keys' V rows (their addresses passed round the warp).
    uint4 k_row[D / 8];
#pragma unroll
    for (int i = 0; i < D / 8; ++i)
      k_row[i] = mine.k ? reinterpret_cast<const uint4*>(mine.k)[i] : make_uint4(0, 0, 0, 0);
    using Cols = typename std::conditional<kCols == 4, uint2, uint32_t>::type;
    Cols v_cols[32];
#pragma unroll
    for (int j = 0; j < 32; ++j) {
      const auto* v = reinterpret_cast<const __nv_bfloat16*>(__shfl_sync(kAll, reinterpret_cast<uintptr_t>(mine.v), j));
      v_cols[j] = v ? *reinterpret_cast<const Cols*>(v + lane * kCols) : Cols{};
    }

    // This lane's key's score for every packed row.
    float s[M];
#pragma unroll
    for (int m = 0; m < M; ++m) s[m] = 0.f;
#pragma unroll
    for (int i = 0; i < D / 8; ++i) {
      const __nv_bfloat162* k2 = reinterpret_cast<const __nv_bfloat162*>(&k_row[i]);
      float k[8];
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float2 f = __bfloat1622float2(k2[e]);
        k[2 * e] = f.x;
        k[2 * e + 1] = f.y;
      }
#pragma unroll
      for (int m = 0; m < M; ++m) {
        const float4 a = *reinterpret_cast<const float4*>(&q_s[m][8 * i]);
        const float4 b = *reinterpret_cast<const float4*>(&q_s[m][8 * i + 4]);
        s[m] = fmaf(a.x, k[0], fmaf(a.y, k[1], fmaf(a.z, k[2], fmaf(a.w, k[3], s[m]))));
        s[m] = fmaf(b.x, k[4], fmaf(b.y, k[5], fmaf(b.z, k[6], fmaf(b.w, k[7], s[m]))));
      }
    }

    // Online softmax over the chunk, per packed row.
#pragma unroll
    for (int m = 0; m < M; ++m) {
      const bool seen = mine.k && m < packed && mine.index <= mine.limit + m / group;
      const float score = seen ? s[m] : -INFINITY;
      const float new_max = fmaxf(run_max[m], warp_max(score));
      // Nothing seen yet (new_max -inf): nothing to rescale and every probability is 0.
      const float rescale = new_max == -INFINITY ? 1.f : exp2f(run_max[m] - new_max);
      const float prob = seen ? exp2f(score - new_max) : 0.f;
      run_max[m] = new_max;
      run_sum[m] = run_sum[m] * rescale + prob;
#pragma unroll
      for (int c = 0; c < kCols; ++c) acc[m][c] *= rescale;
      p_s[warp][m][lane] = prob;
    }
    __syncwarp();

    // acc[m][c] += sum over the chunk's keys j of P[m][j] V[j][lane's column c].
#pragma unroll
    for (int j4 = 0; j4 < 32; j4 += 4) {
      float4 prob[M];
#pragma unroll
      for (int m = 0; m < M; ++m) prob[m] = *reinterpret_cast<const float4*>(&p_s[warp][m][j4]);
#pragma unroll
      for (int jj = 0; jj < 4; ++jj) {
        float v[kCols];
        const __nv_bfloat162* v2 = reinterpret_cast<const __nv_bfloat162*>(&v_cols[j4 + jj]);
#pragma unroll
        for (int e = 0; e < kCols / 2; ++e) {
          const float2 f = __bfloat1622float2(v2[e]);
          v[2 * e] = f.x;
          v[2 * e + 1] = f.y;
        }
#pragma unroll
        for (int m = 0; m < M; ++m) {
          const float pj = jj == 0 ? prob[m].x : jj == 1 ? prob[m].y : jj == 2 ? prob[m].z : prob[m].w;
#pragma unroll
          for (int c = 0; c < kCols; ++c) acc[m][c] = fmaf(pj, v[c], acc[m][c]);
        }
      }
    }
    __syncwarp();  // p_s is written again by the next chunk
  }

  // Merge the warps: each one's max, sum and output, weighed by exp2(its max - the block's).
#pragma unroll
  for (int m = 0; m < M; ++m) {
    const float sum = warp_sum(run_sum[m]);
    if (lane == 0) {
      max_s[warp][m] = run_max[m];
      sum_s[warp][m] = sum;
    }
#pragma unroll
    for (int c = 0; c < kCols; ++c) o_s[warp][m][lane * kCols + c] = acc[m][c];
  }
  __syncthreads();
  __nv_bfloat16* o = static_cast<__nv_bfloat16*>(p.o);
  for (int i = threadIdx.x; i < packed * D; i += kThreads) {
    const int m = i / D, d = i % D;
    float block_max = -INFINITY;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) block_max = fmaxf(block_max, max_s[w][m]);
    float sum = 0.f, out = 0.f;
    if (block_max != -INFINITY) {
#pragma unroll
      for (int w = 0; w < kWarps; ++w) {
        const float weight = max_s[w][m] == -INFINITY ? 0.f : exp2f(max_s[w][m] - block_max);
        sum += weight * sum_s[w][m];
        out += weight * o_s[w][m][d];
      }
    }
    const int64_t row = m / group, head = kv_head * group + m % group;
    const int64_t pair = (static_cast<int64_t>(part) * p.rows + row) * p.q_heads + head;
    o[pair * D + d] = __float2bfloat16(sum > 0.f ? out / sum : 0.f);
    // LSE in natural log: the scores were scaled by log2(e).
    if (d == 0) p.lse[pair] = sum > 0.f ? (block_max + log2f(sum)) * 0.6931471805599453f : -INFINITY;
  }
}

}  // namespace

#define APB_DECODE_ENTRY(D, M)                                                                          \
  extern "C" __global__ void __launch_bounds__(kThreads, 1) apb_attention_decode_d##D##_r##M(apb_decode_params p) { \
    decode<D, M>(p);                                                                                    \
  }
APB_DECODE_ENTRY(64, 4)
APB_DECODE_ENTRY(64, 8)
APB_DECODE_ENTRY(128, 4)
APB_DECODE_ENTRY(128, 8)
