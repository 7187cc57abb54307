// APB attention, FlashAttention-2 style on tensor cores (mma.sync m16n8k16, bf16 in, fp32
// accumulate). A block of 4 warps owns 128 query rows of one query head; each warp owns 32
// (two m16 tiles), so every K and V fragment read from shared memory feeds two mma's.
// Keys stream in tiles of 64 through shared memory from each segment in place (passing
// blocks, anchor, local block: no concatenation); a tile no row of the block can see is
// never loaded. The next tile's K is fetched while this tile's softmax and P V run, and its
// V while the next S = Q K^T runs. Softmax runs online in the log2 domain; O is normalised
// at the end and LSE is written in natural log (-inf and zeros for a row that sees no key).
//
// This is the portable kernel (sm_80+ instructions, head_dim 64 and 128); on Hopper the
// engine runs attention_sm90.cu for head_dim 128. Launched only by
// crates/apb-cuda/src/attention.rs, which owns the grid, block and shared-memory size and
// checks shapes first: grid (ceil(rows / 128), q_heads), 128 threads,
// (128 + 2 * 64) * (head_dim + 8) * 2 bytes of dynamic shared memory. Parameters:
// (const bf16* q, bf16* o, float* lse, int64_t rows, int32_t q_heads, int32_t kv_heads,
//  apb_segment_list segments by value).
#include <cuda_bf16.h>
#include <stdint.h>

#include "common.cuh"

namespace {

using namespace apb;

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kMTiles = 2;                          // m16 row tiles per warp
constexpr int kBlockRows = 16 * kMTiles * kWarps;   // query rows per block
constexpr int kBlockKeys = 64;           // keys per tile
constexpr int kPad = 8;                  // bf16 elements of padding per smem row (16 bytes)

using Segments = apb_segment_list;



// Copies `n` of `kRows` rows (the rest zero) of one head into a [kRows][D + kPad] smem tile.
template <int D, int kRows>
__device__ __forceinline__ void load_tile(__nv_bfloat16* tile, const __nv_bfloat16* src, int64_t first, int n,
                                          int64_t row_stride) {
  constexpr int kChunks = D / 8;  // 16-byte chunks per row
  for (int c = threadIdx.x; c < kRows * kChunks; c += kThreads) {
    int r = c / kChunks, k = (c % kChunks) * 8;
    bool valid = r < n;
    const __nv_bfloat16* g = src + (valid ? (first + r) * row_stride + k : 0);
    cp_async16(smem_addr(tile + r * (D + kPad) + k), g, valid);
  }
}

// The launch shape attention.rs uses (PORTABLE_BLOCK_ROWS, PORTABLE_THREADS, PORTABLE_PAD).
static_assert(kBlockRows == 128 && kThreads == 128 && kPad == 8 && kBlockKeys == 64, "attention.rs launches this shape");

template <int D>
__device__ __forceinline__ void attention_body(const __nv_bfloat16* __restrict__ q, __nv_bfloat16* __restrict__ o,
                                               float* __restrict__ lse, int64_t rows, int q_heads, int kv_heads,
                                               const Segments& segs) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  __nv_bfloat16* sQ = reinterpret_cast<__nv_bfloat16*>(smem_raw);
  __nv_bfloat16* sK = sQ + kBlockRows * (D + kPad);
  __nv_bfloat16* sV = sK + kBlockKeys * (D + kPad);

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int head = blockIdx.y, kv_head = head / (q_heads / kv_heads);
  // Causal blocks further down see more keys: start them first so the tail stays short.
  const int64_t row0 = static_cast<int64_t>(gridDim.x - 1 - blockIdx.x) * kBlockRows;
  const int64_t q_stride = static_cast<int64_t>(q_heads) * D;
  const int64_t kv_stride = static_cast<int64_t>(kv_heads) * D;
  const float scale_log2 = 1.4426950408889634f / sqrtf(static_cast<float>(D));
  const int warp_row = warp * 16 * kMTiles;  // first of this warp's rows within the block

  {
    int n = static_cast<int>(lmin(kBlockRows, rows - row0));
    load_tile<D, kBlockRows>(sQ, q + head * D, row0, n, q_stride);
    cp_async_commit();
  }

  float acc[kMTiles][D / 8][4];
#pragma unroll
  for (int mt = 0; mt < kMTiles; ++mt)
#pragma unroll
    for (int j = 0; j < D / 8; ++j) acc[mt][j][0] = acc[mt][j][1] = acc[mt][j][2] = acc[mt][j][3] = 0.f;
  float m[kMTiles][2], l[kMTiles][2];
  int64_t my_row[kMTiles][2];  // this thread's rows: lane/4 and lane/4 + 8 of each m16 tile
#pragma unroll
  for (int mt = 0; mt < kMTiles; ++mt)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      m[mt][h] = -INFINITY;
      l[mt][h] = 0.f;
      my_row[mt][h] = row0 + warp_row + mt * 16 + lane / 4 + h * 8;
    }
  const int64_t last_row = lmin(row0 + kBlockRows, rows) - 1;

  // Tiles are visited segment by segment; `seen` is how many keys of a segment any row of
  // this block sees (the last row sees the most), so unseen tiles are never loaded.
  auto seen = [&](int si) { return visible(segs.s[si], last_row, rows); };
  int si = 0;
  int64_t t0 = 0;
  while (si < segs.n && seen(si) == 0) ++si;
  auto issue = [&](__nv_bfloat16* tile, bool keys, int sj, int64_t tj) {
    const apb_segment& g = segs.s[sj];
    const __nv_bfloat16* base = static_cast<const __nv_bfloat16*>(keys ? g.k : g.v) + kv_head * D;
    load_tile<D, kBlockKeys>(tile, base, g.start + tj, static_cast<int>(lmin(kBlockKeys, g.count - tj)), kv_stride);
  };
  if (si < segs.n) {
    issue(sK, true, si, 0);
    cp_async_commit();
    issue(sV, false, si, 0);
    cp_async_commit();
  }
  while (si < segs.n) {
    const apb_segment seg = segs.s[si];
    const int n = static_cast<int>(lmin(kBlockKeys, seg.count - t0));
    int next_si = si;
    int64_t next_t0 = t0 + kBlockKeys;
    if (next_t0 >= seen(si)) {
      next_t0 = 0;
      do ++next_si; while (next_si < segs.n && seen(next_si) == 0);
    }
    const bool has_next = next_si < segs.n;
    cp_async_wait<1>();  // Q and this tile's K landed; its V may still be in flight
    __syncthreads();

    // S = Q K^T for this warp's 16 * kMTiles rows x 64 keys; each K fragment serves every
    // m16 tile of the warp, Q fragments are read from smem as they are needed.
    float s[kMTiles][kBlockKeys / 8][4];
#pragma unroll
    for (int mt = 0; mt < kMTiles; ++mt)
#pragma unroll
      for (int j = 0; j < kBlockKeys / 8; ++j) s[mt][j][0] = s[mt][j][1] = s[mt][j][2] = s[mt][j][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      uint32_t qa[kMTiles][4];
#pragma unroll
      for (int mt = 0; mt < kMTiles; ++mt) {
        int r = warp_row + mt * 16 + (lane % 8) + ((lane / 8) % 2) * 8;
        ldmatrix_x4(qa[mt], sQ + r * (D + kPad) + kk * 16 + (lane / 16) * 8);
      }
#pragma unroll
      for (int j = 0; j < kBlockKeys / 8; j += 2) {
        uint32_t b[4];
        int key = j * 8 + (lane % 8) + (lane / 16) * 8;
        int dim = kk * 16 + ((lane / 8) % 2) * 8;
        ldmatrix_x4(b, sK + key * (D + kPad) + dim);
#pragma unroll
        for (int mt = 0; mt < kMTiles; ++mt) {
          mma_bf16(s[mt][j], qa[mt], b[0], b[1]);
          mma_bf16(s[mt][j + 1], qa[mt], b[2], b[3]);
        }
      }
    }
    __syncthreads();  // every warp is done with sK: fetch the next tile's keys into it
    if (has_next) issue(sK, true, next_si, next_t0);
    cp_async_commit();

    // Mask, then the online softmax update per row.
#pragma unroll
    for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int64_t limit = lmin(visible(seg, my_row[mt][h], rows) - t0, n);
        float tile_max = -INFINITY;
#pragma unroll
        for (int j = 0; j < kBlockKeys / 8; ++j) {
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            int key = j * 8 + (lane % 4) * 2 + e;
            float v = (key < limit && my_row[mt][h] < rows) ? s[mt][j][h * 2 + e] * scale_log2 : -INFINITY;
            s[mt][j][h * 2 + e] = v;
            tile_max = fmaxf(tile_max, v);
          }
        }
        tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffff, tile_max, 1));
        tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffff, tile_max, 2));
        const float m_new = fmaxf(m[mt][h], tile_max);
        // A row that has seen nothing yet keeps m = -inf; exp2 of (-inf) - (-inf) is avoided.
        const float base = m_new == -INFINITY ? 0.f : m_new;
        const float correction = exp2f(m[mt][h] - base);
        float row_sum = 0.f;
#pragma unroll
        for (int j = 0; j < kBlockKeys / 8; ++j) {
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            float p = exp2f(s[mt][j][h * 2 + e] - base);
            s[mt][j][h * 2 + e] = p;
            row_sum += p;
          }
        }
        row_sum += __shfl_xor_sync(0xffffffff, row_sum, 1);
        row_sum += __shfl_xor_sync(0xffffffff, row_sum, 2);
        l[mt][h] = l[mt][h] * correction + row_sum;
        m[mt][h] = m_new;
#pragma unroll
        for (int j = 0; j < D / 8; ++j) {
          acc[mt][j][h * 2] *= correction;
          acc[mt][j][h * 2 + 1] *= correction;
        }
      }
    }

    cp_async_wait<1>();  // this tile's V landed; the next K may still be in flight
    __syncthreads();
    // O += P V: P's accumulator layout is already the A-fragment layout of the next mma,
    // and each V fragment serves every m16 tile of the warp.
#pragma unroll
    for (int kk = 0; kk < kBlockKeys / 16; ++kk) {
      uint32_t pa[kMTiles][4];
#pragma unroll
      for (int mt = 0; mt < kMTiles; ++mt) {
        pa[mt][0] = pack_bf16(s[mt][2 * kk][0], s[mt][2 * kk][1]);
        pa[mt][1] = pack_bf16(s[mt][2 * kk][2], s[mt][2 * kk][3]);
        pa[mt][2] = pack_bf16(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
        pa[mt][3] = pack_bf16(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
      }
#pragma unroll
      for (int j = 0; j < D / 8; j += 2) {
        uint32_t b[4];
        int key = kk * 16 + (lane % 8) + ((lane / 8) % 2) * 8;
        int dim = j * 8 + (lane / 16) * 8;
        ldmatrix_x4_trans(b, sV + key * (D + kPad) + dim);
#pragma unroll
        for (int mt = 0; mt < kMTiles; ++mt) {
          mma_bf16(acc[mt][j], pa[mt], b[0], b[1]);
          mma_bf16(acc[mt][j + 1], pa[mt], b[2], b[3]);
        }
      }
    }
    __syncthreads();  // every warp is done with sV: fetch the next tile's values into it
    if (has_next) issue(sV, false, next_si, next_t0);
    cp_async_commit();
    si = next_si;
    t0 = next_t0;
  }

  cp_async_wait<0>();  // nothing left in flight (a block that saw no key never waited on Q)

  // Normalise and write O and LSE.
#pragma unroll
  for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int64_t row = my_row[mt][h];
      if (row >= rows) continue;
      const float inv = l[mt][h] > 0.f ? 1.f / l[mt][h] : 0.f;
      __nv_bfloat16* out = o + row * q_stride + head * D;
#pragma unroll
      for (int j = 0; j < D / 8; ++j) {
        int dim = j * 8 + (lane % 4) * 2;
        *reinterpret_cast<__nv_bfloat162*>(out + dim) =
            __floats2bfloat162_rn(acc[mt][j][h * 2] * inv, acc[mt][j][h * 2 + 1] * inv);
      }
      if (lane % 4 == 0) {
        lse[row * q_heads + head] = l[mt][h] > 0.f ? (m[mt][h] + log2f(l[mt][h])) * 0.6931471805599453f : -INFINITY;
      }
    }
  }
}

}  // namespace

extern "C" __global__ void __launch_bounds__(kThreads)
    apb_attention_d64(const __nv_bfloat16* q, __nv_bfloat16* o, float* lse, int64_t rows, int32_t q_heads,
                      int32_t kv_heads, apb_segment_list segs) {
  attention_body<64>(q, o, lse, rows, q_heads, kv_heads, segs);
}

extern "C" __global__ void __launch_bounds__(kThreads)
    apb_attention_d128(const __nv_bfloat16* q, __nv_bfloat16* o, float* lse, int64_t rows, int32_t q_heads,
                       int32_t kv_heads, apb_segment_list segs) {
  attention_body<128>(q, o, lse, rows, q_heads, kv_heads, segs);
}
