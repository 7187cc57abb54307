// Device helpers shared by the kernels: async copies, bf16 packing, tensor-core fragments,
// and which keys of a segment a query row may see.
#pragma once
#include <cuda_bf16.h>
#include <stddef.h>
#include <stdint.h>

// Key segments, as the portable attention kernel takes them (by value) and as the Hopper one
// counts them. Mirrored by #[repr(C)] structs in crates/apb-cuda/src/attention.rs; the layout
// asserts below and there state the same sizes and offsets, and a Rust test reads these.
#define APB_MAX_SEGMENTS 4

// A run of keys and values: [tokens][kv_heads][head_dim] bf16, rows start..start+count.
// A causal segment is bottom-right aligned to the query rows: row i sees keys
// 0..=i + (count - rows) of it; it must be the last segment.
typedef struct {
  const void* k;
  const void* v;
  int64_t start;
  int64_t count;
  int32_t causal;
} apb_segment;

typedef struct {
  apb_segment s[APB_MAX_SEGMENTS];
  int32_t n;
} apb_segment_list;

// layout: apb_segment size 40 align 8 k 0 v 8 start 16 count 24 causal 32
static_assert(sizeof(apb_segment) == 40 && alignof(apb_segment) == 8 && offsetof(apb_segment, k) == 0 &&
                  offsetof(apb_segment, v) == 8 && offsetof(apb_segment, start) == 16 &&
                  offsetof(apb_segment, count) == 24 && offsetof(apb_segment, causal) == 32,
              "apb_segment's layout is mirrored in attention.rs");
// layout: apb_segment_list size 168 align 8 s 0 n 160
static_assert(sizeof(apb_segment_list) == 168 && alignof(apb_segment_list) == 8 && offsetof(apb_segment_list, s) == 0 &&
                  offsetof(apb_segment_list, n) == 160,
              "apb_segment_list's layout is mirrored in attention.rs");

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

// Tensor-core fragments (sm_80+): four 8x8 bf16 matrices from shared memory (plain or
// transposed), and D += A B for a 16x16 A and a 16x8 B with fp32 accumulation.
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}
__device__ __forceinline__ void mma_bf16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Keys of `seg` that query row `row` (of `rows`) may see: all, or bottom-right causal.
__device__ __forceinline__ int64_t visible(const apb_segment& seg, int64_t row, int64_t rows) {
  if (!seg.causal) return seg.count;
  int64_t limit = row + 1 + seg.count - rows;
  return limit < 0 ? 0 : (limit > seg.count ? seg.count : limit);
}

}  // namespace apb
