// APB attention for Hopper (sm_90a): the same algorithm as attention.cu, with the two
// matrix products on wgmma. One warpgroup (4 warps) owns 64 query rows of one head: S = Q K^T
// is m64n64k16 with Q and K read from shared memory through descriptors, O += P V is
// m64n128k16 with P from registers and V from shared memory (transposed on the fly). Tiles
// sit in shared memory in the 128-byte-swizzled layout wgmma reads (rows of 64 bf16, the
// 16-byte chunks of row r permuted by r % 8).
//
// Status: correct on the H100 (every check of test/gpu/attention_check.py --kernel=sm90
// passes) but, as a synchronous loop (load, S, softmax, P V, each waited for), it runs at
// 220-248 TFLOP/s: slower than attention.cu's mma.sync kernel, so nothing uses it yet. Two
// warpgroups sharing K/V (208-235) and a two-stage cp.async pipeline (196-216) were slower
// still. What it establishes: the swizzled layouts, descriptors and fragment mappings wgmma
// needs. Next: FlashAttention-3's structure (a TMA producer warp, two consumer warpgroups
// in ping-pong so one's softmax overlaps the other's wgmma).
#include <cuda_bf16.h>
#include <stdint.h>

#include "attention.h"
#include "common.cuh"

// Other targets (the compute_80 PTX) get a stub that traps: this kernel is Hopper-only.
#if defined(__CUDA_ARCH__) && !defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define APB_NO_WGMMA 1
#endif

namespace sm90 {

using namespace apb;

constexpr int kD = 128;
constexpr int kRows = 64;    // query rows per block (one warpgroup)
constexpr int kKeys = 64;    // keys per tile
constexpr int kThreads = 128;
constexpr int kSubTile = 64 * 128;  // bytes of one [64 rows][64 bf16] swizzled sub-tile

// [64 rows][128 dims] of one head into two swizzled [64][64] sub-tiles; rows >= n are zero.
__device__ __forceinline__ void load_swizzled(unsigned char* tile, const __nv_bfloat16* src, int64_t first, int n,
                                              int64_t row_stride) {
  for (int c = threadIdx.x; c < 64 * 16; c += kThreads) {
    int r = c / 16, chunk = c % 16;
    int sub = chunk / 8, cc = chunk % 8;
    bool valid = r < n;
    const __nv_bfloat16* g = src + (valid ? (first + r) * row_stride + chunk * 8 : 0);
    uint32_t dst = smem_addr(tile + sub * kSubTile + r * 128 + ((cc ^ (r % 8)) * 16));
    cp_async16(dst, g, valid);
  }
}

// Shared-memory matrix descriptor: start address, leading and stride byte offsets (all
// >> 4), 128-byte swizzle.
__device__ __forceinline__ uint64_t descriptor(uint32_t addr, uint32_t lbo_bytes, uint32_t sbo_bytes) {
  uint64_t d = 0;
  d |= static_cast<uint64_t>((addr >> 4) & 0x3FFF);
  d |= static_cast<uint64_t>((lbo_bytes >> 4) & 0x3FFF) << 16;
  d |= static_cast<uint64_t>((sbo_bytes >> 4) & 0x3FFF) << 32;
  d |= static_cast<uint64_t>(1) << 62;
  return d;
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_wait() { asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory"); }

#ifndef APB_NO_WGMMA
// S[64x64] (+)= A[64x16] B[16x64], A and B K-major in shared memory.
__device__ __forceinline__ void wgmma_s(float (&d)[32], uint64_t da, uint64_t db, int accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
      "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31},"
      " %32, %33, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]),
        "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]),
        "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]),
        "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "l"(da), "l"(db), "r"(accumulate));
}

// O[64x128] += P[64x16] (registers) V[16x128] (shared memory, N-major: transposed).
__device__ __forceinline__ void wgmma_o(float (&d)[64], const uint32_t (&a)[4], uint64_t db) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
      "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,"
      "%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63},"
      " {%64,%65,%66,%67}, %68, p, 1, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]),
        "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]),
        "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]),
        "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]),
        "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]),
        "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]),
        "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]),
        "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db));
}
#endif

}  // namespace sm90

using namespace sm90;

extern "C" __global__ void __launch_bounds__(kThreads)
    apb_attention_sm90_d128(const __nv_bfloat16* q, __nv_bfloat16* o, float* lse, int64_t rows, int32_t q_heads,
                            int32_t kv_heads, apb_segment_list segs) {
#ifdef APB_NO_WGMMA
  __trap();  // built only for sm_90a; other GPUs use apb_attention_d128
#else
  extern __shared__ __align__(16) unsigned char smem_raw[];
  // Swizzled tiles must start on 1024-byte boundaries (the swizzle pattern repeats there).
  unsigned char* smem = smem_raw + ((1024 - smem_addr(smem_raw) % 1024) % 1024);
  unsigned char* sQ = smem;                  // 2 sub-tiles
  unsigned char* sK = smem + 2 * kSubTile;   // 2 sub-tiles
  unsigned char* sV = smem + 4 * kSubTile;   // 2 sub-tiles
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int head = blockIdx.y, kv_head = head / (q_heads / kv_heads);
  const int64_t row0 = static_cast<int64_t>(gridDim.x - 1 - blockIdx.x) * kRows;
  const int64_t q_stride = static_cast<int64_t>(q_heads) * kD, kv_stride = static_cast<int64_t>(kv_heads) * kD;
  const float scale_log2 = 1.4426950408889634f / sqrtf(static_cast<float>(kD));

  load_swizzled(sQ, q + head * kD, row0, static_cast<int>(lmin(kRows, rows - row0)), q_stride);
  cp_async_commit();

  float acc[64];
#pragma unroll
  for (int i = 0; i < 64; ++i) acc[i] = 0.f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
  const int64_t my_row[2] = {row0 + warp * 16 + lane / 4, row0 + warp * 16 + lane / 4 + 8};
  const int64_t last_row = lmin(row0 + kRows, rows) - 1;

  for (int si = 0; si < segs.n; ++si) {
    const apb_segment seg = segs.s[si];
    const int64_t seen = visible(seg, last_row, rows);
    const __nv_bfloat16* kbase = static_cast<const __nv_bfloat16*>(seg.k) + kv_head * kD;
    const __nv_bfloat16* vbase = static_cast<const __nv_bfloat16*>(seg.v) + kv_head * kD;
    for (int64_t t0 = 0; t0 < seen; t0 += kKeys) {
      const int n = static_cast<int>(lmin(kKeys, seg.count - t0));
      __syncthreads();
      load_swizzled(sK, kbase, seg.start + t0, n, kv_stride);
      cp_async_commit();
      load_swizzled(sV, vbase, seg.start + t0, n, kv_stride);
      cp_async_commit();
      cp_async_wait<1>();
      asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
      __syncthreads();

      float s[32];
#pragma unroll
      for (int i = 0; i < 32; ++i) s[i] = 0.f;
      wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < kD / 16; ++kk) {
        const uint32_t off = (kk / 4) * kSubTile + (kk % 4) * 32;
        wgmma_s(s, descriptor(smem_addr(sQ) + off, 16, 1024), descriptor(smem_addr(sK) + off, 16, 1024), kk > 0);
      }
      wgmma_commit();
      wgmma_wait();

      // s[4j + 2h + e]: row my_row[h], key 8j + 2(lane % 4) + e (the m16n8 layout per warp).
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int64_t limit = lmin(visible(seg, my_row[h], rows) - t0, n);
        float tile_max = -INFINITY;
#pragma unroll
        for (int j = 0; j < 8; ++j)
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            int key = j * 8 + (lane % 4) * 2 + e;
            float v = (key < limit && my_row[h] < rows) ? s[4 * j + 2 * h + e] * scale_log2 : -INFINITY;
            s[4 * j + 2 * h + e] = v;
            tile_max = fmaxf(tile_max, v);
          }
        tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffff, tile_max, 1));
        tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffff, tile_max, 2));
        const float m_new = fmaxf(m[h], tile_max);
        const float base = m_new == -INFINITY ? 0.f : m_new;
        const float correction = exp2f(m[h] - base);
        float row_sum = 0.f;
#pragma unroll
        for (int j = 0; j < 8; ++j)
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            float p = exp2f(s[4 * j + 2 * h + e] - base);
            s[4 * j + 2 * h + e] = p;
            row_sum += p;
          }
        row_sum += __shfl_xor_sync(0xffffffff, row_sum, 1);
        row_sum += __shfl_xor_sync(0xffffffff, row_sum, 2);
        l[h] = l[h] * correction + row_sum;
        m[h] = m_new;
#pragma unroll
        for (int j = 0; j < 16; ++j) {
          acc[4 * j + 2 * h] *= correction;
          acc[4 * j + 2 * h + 1] *= correction;
        }
      }

      cp_async_wait<0>();
      asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
      __syncthreads();
      wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < kKeys / 16; ++kk) {
        const uint32_t a[4] = {pack_bf16(s[8 * kk + 0], s[8 * kk + 1]), pack_bf16(s[8 * kk + 2], s[8 * kk + 3]),
                               pack_bf16(s[8 * kk + 4], s[8 * kk + 5]), pack_bf16(s[8 * kk + 6], s[8 * kk + 7])};
        // Keys 16kk..16kk+15 are rows 16kk.. of both V sub-tiles; the second sub-tile holds
        // dims 64..127 (the leading-dimension step), each 8 keys one swizzle atom (stride).
        wgmma_o(acc, a, descriptor(smem_addr(sV) + kk * 16 * 128, kSubTile, 1024));
      }
      wgmma_commit();
      wgmma_wait();
    }
  }
  cp_async_wait<0>();

#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int64_t row = my_row[h];
    if (row >= rows) continue;
    const float inv = l[h] > 0.f ? 1.f / l[h] : 0.f;
    __nv_bfloat16* out = o + row * q_stride + head * kD;
#pragma unroll
    for (int j = 0; j < 16; ++j) {
      int dim = j * 8 + (lane % 4) * 2;
      *reinterpret_cast<__nv_bfloat162*>(out + dim) = __floats2bfloat162_rn(acc[4 * j + 2 * h] * inv, acc[4 * j + 2 * h + 1] * inv);
    }
    if (lane % 4 == 0) lse[row * q_heads + head] = l[h] > 0.f ? (m[h] + log2f(l[h])) * 0.6931471805599453f : -INFINITY;
  }
#endif
}

extern "C" int apb_attention_sm90_bf16(const apb_attention_args* a, void* stream) {
  if (!a || !a->q || !a->o || !a->lse) return APB_BAD_POINTER;
  if (a->head_dim != 128) return APB_BAD_HEAD_DIM;
  if (a->q_heads <= 0 || a->kv_heads <= 0 || a->q_heads % a->kv_heads != 0 || a->rows < 0) return APB_BAD_HEADS;
  if (a->segment_count < 0 || a->segment_count > APB_MAX_SEGMENTS) return APB_BAD_SEGMENTS;
  if (a->rows == 0) return APB_OK;
  apb_segment_list segs;
  segs.n = a->segment_count;
  for (int i = 0; i < a->segment_count; ++i) segs.s[i] = a->segments[i];
  const int smem = 6 * kSubTile + 1024;  // + alignment slack
  if (cudaFuncSetAttribute(apb_attention_sm90_d128, cudaFuncAttributeMaxDynamicSharedMemorySize, smem) != cudaSuccess)
    return APB_LAUNCH_FAILED;
  dim3 grid(static_cast<unsigned>((a->rows + kRows - 1) / kRows), static_cast<unsigned>(a->q_heads));
  apb_attention_sm90_d128<<<grid, kThreads, smem, static_cast<cudaStream_t>(stream)>>>(
      static_cast<const __nv_bfloat16*>(a->q), static_cast<__nv_bfloat16*>(a->o), a->lse, a->rows, a->q_heads,
      a->kv_heads, segs);
  return cudaGetLastError() == cudaSuccess ? APB_OK : APB_LAUNCH_FAILED;
}
