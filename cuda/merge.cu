// The stable LSE merge: with m = max_i lse_i and w_i = exp(lse_i - m),
// O = sum_i w_i O_i / sum_i w_i and LSE = m + log(sum_i w_i). Nothing overflows, and parts
// that saw no key (lse = -inf) weigh nothing; if no part saw a key, O = 0 and LSE = -inf.
// Each thread merges 8 contiguous elements (16 bytes) of one (row, head).
//
// Launched only by crates/apb-cuda/src/merge.rs, which checks the parts' shapes (head_dim a
// multiple of 8, 1 to 16 parts of the output's shape): one thread per 8 elements of a
// (row, head), 256 threads per block, grid ceil(pairs * head_dim / 8 / 256), no dynamic
// shared memory. Parameters: (apb_merge_parts by value, int32_t part_count, bf16* out_o,
// float* out_lse, int64_t pairs = rows * heads, int32_t head_dim).
#include <cuda_bf16.h>
#include <stddef.h>
#include <stdint.h>

#define APB_MAX_MERGE_PARTS 16

// Each part's O ([rows][heads][head_dim] bf16) and LSE ([rows][heads], natural log, -inf for
// "saw nothing"), mirrored by MergeParts in merge.rs.
typedef struct {
  const void* o[APB_MAX_MERGE_PARTS];
  const float* lse[APB_MAX_MERGE_PARTS];
} apb_merge_parts;

// layout: apb_merge_parts size 256 align 8 o 0 lse 128
static_assert(sizeof(apb_merge_parts) == 256 && alignof(apb_merge_parts) == 8 && offsetof(apb_merge_parts, o) == 0 &&
                  offsetof(apb_merge_parts, lse) == 128,
              "apb_merge_parts' layout is mirrored in merge.rs");

extern "C" __global__ void apb_merge_bf16_kernel(apb_merge_parts p, int32_t parts, __nv_bfloat16* __restrict__ out_o,
                                                 float* __restrict__ out_lse, int64_t pairs, int32_t head_dim) {
  const int chunks = head_dim / 8;
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t pair = t / chunks;  // (row, head) flattened, as LSE is laid out
  if (pair >= pairs) return;
  const int chunk = static_cast<int>(t % chunks);
  float m = -INFINITY;
  for (int i = 0; i < parts; ++i) m = fmaxf(m, p.lse[i][pair]);
  float acc[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
  float total = 0.f;
  if (m != -INFINITY) {
    for (int i = 0; i < parts; ++i) {
      const float w = __expf(p.lse[i][pair] - m);
      total += w;
      const uint4 raw =
          *reinterpret_cast<const uint4*>(static_cast<const __nv_bfloat16*>(p.o[i]) + pair * head_dim + chunk * 8);
      const __nv_bfloat162* v = reinterpret_cast<const __nv_bfloat162*>(&raw);
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float2 f = __bfloat1622float2(v[e]);
        acc[2 * e] += w * f.x;
        acc[2 * e + 1] += w * f.y;
      }
    }
  }
  const float inv = total > 0.f ? 1.f / total : 0.f;
  uint4 packed;
  __nv_bfloat162* outv = reinterpret_cast<__nv_bfloat162*>(&packed);
#pragma unroll
  for (int e = 0; e < 4; ++e) outv[e] = __floats2bfloat162_rn(acc[2 * e] * inv, acc[2 * e + 1] * inv);
  *reinterpret_cast<uint4*>(out_o + pair * head_dim + chunk * 8) = packed;
  if (chunk == 0) out_lse[pair] = total > 0.f ? m + __logf(total) : -INFINITY;
}
