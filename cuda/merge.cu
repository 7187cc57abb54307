// The stable LSE merge: with m = max_i lse_i and w_i = exp(lse_i - m),
// O = sum_i w_i O_i / sum_i w_i and LSE = m + log(sum_i w_i). Nothing overflows, and parts
// that saw no key (lse = -inf) weigh nothing; if no part saw a key, O = 0 and LSE = -inf.
// Each thread merges 8 contiguous elements (16 bytes) of one (row, head).
#include <cuda_bf16.h>
#include <stdint.h>

#include "merge.h"

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

extern "C" int apb_merge_bf16(const apb_merge_args* a, void* stream) {
  if (!a) return APB_BAD_POINTER;
  if (a->head_dim <= 0 || a->head_dim % 8 != 0 || a->parts < 1 || a->parts > APB_MAX_MERGE_PARTS || a->rows < 0 ||
      a->heads < 0)
    return APB_BAD_SHAPE;
  if (!a->out_o || !a->out_lse) return APB_BAD_POINTER;
  apb_merge_parts p = {};
  for (int i = 0; i < a->parts; ++i) {
    if (!a->o[i] || !a->lse[i]) return APB_BAD_POINTER;
    p.o[i] = a->o[i];
    p.lse[i] = a->lse[i];
  }
  const int64_t pairs = a->rows * a->heads;
  if (pairs == 0) return APB_OK;
  const int64_t threads = pairs * (a->head_dim / 8);
  const int block = APB_MERGE_THREADS;
  apb_merge_bf16_kernel<<<static_cast<unsigned>((threads + block - 1) / block), block, 0, static_cast<cudaStream_t>(stream)>>>(
      p, a->parts, static_cast<__nv_bfloat16*>(a->out_o), a->out_lse, pairs, a->head_dim);
  return cudaGetLastError() == cudaSuccess ? APB_OK : APB_LAUNCH_FAILED;
}
