// Device helpers shared by the attention kernels: async copies, bf16 packing, and which keys
// of a segment a query row may see.
#pragma once
#include <cuda_bf16.h>
#include <stdint.h>

#include "attention.h"

namespace apb {

__device__ __forceinline__ int64_t lmin(int64_t a, int64_t b) { return a < b ? a : b; }
__device__ __forceinline__ int64_t lmax(int64_t a, int64_t b) { return a > b ? a : b; }

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16 bytes global -> shared; `valid` false zero-fills (src-size 0) so masked rows never read.
__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}

// Keys of `seg` that query row `row` (of `rows`) may see: all, or bottom-right causal.
__device__ __forceinline__ int64_t visible(const apb_segment& seg, int64_t row, int64_t rows) {
  if (!seg.causal) return seg.count;
  int64_t limit = row + 1 + seg.count - rows;
  return limit < 0 ? 0 : (limit > seg.count ? seg.count : limit);
}

}  // namespace apb
