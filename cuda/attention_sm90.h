// The Hopper attention kernel's launch parameters. Tiles arrive through the tensor memory
// accelerator (TMA), which reads a tensor map per operand: the host encodes one for Q and one
// for each segment's K and V (cuTensorMapEncodeTiled, 2-D bf16, box 64 columns x 128 rows,
// 128-byte swizzle) and passes them by value inside this struct, the kernel's only
// parameter. Mirrored by crates/apb-cuda (#[repr(C)]); keep the two in step.
#pragma once
#include <stdint.h>

#include "attention.h"

#ifdef __cplusplus
extern "C" {
#endif

// CUtensorMap's layout (cuda.h: 16 opaque 64-bit words, 128-byte aligned) without
// including the driver header here.
typedef struct {
#ifdef __cplusplus
  alignas(128)
#else
  _Alignas(128)
#endif
      uint64_t opaque[16];
} apb_tensor_map;

// Tensor maps: q over [rows][q_heads * 128] bf16; k[i], v[i] over segment i's own rows
// ([count][kv_heads * 128], based at its first row), so reads past a segment's end come
// back as zeros and the kernel needs no start offset.
typedef struct {
  apb_tensor_map q;
  apb_tensor_map k[APB_MAX_SEGMENTS];
  apb_tensor_map v[APB_MAX_SEGMENTS];
  void* o;     // [rows][q_heads][128] bf16
  float* lse;  // [rows][q_heads]
  int64_t rows;
  int64_t count[APB_MAX_SEGMENTS];
  int32_t causal[APB_MAX_SEGMENTS];
  int32_t segment_count;
  int32_t q_heads;
  int32_t kv_heads;
} apb_sm90_params;

// Kernel entry apb_attention_sm90_d128(apb_sm90_params): grid (ceil(rows / 128), q_heads),
// 384 threads (a producer warpgroup and two consumer warpgroups), APB_SM90_SMEM_BYTES of
// dynamic shared memory. Head dim 128 only; Hopper (sm_90a) only.
#define APB_SM90_BLOCK_ROWS 128
#define APB_SM90_TILE_KEYS 128
#define APB_SM90_THREADS 384
// Q tile + 2 stages of K and V tiles (32 KiB each) + barriers + 1 KiB alignment slack.
#define APB_SM90_SMEM_BYTES (5 * 32768 + 1024 + 1024)

// The same contract as apb_attention_bf16 (cuda/attention.h), through the Hopper kernel:
// head_dim must be 128 and the GPU compute capability 9.0. Encodes the tensor maps (the
// driver's cuTensorMapEncodeTiled, found at run time) and launches on `stream`.
int apb_attention_sm90_bf16(const apb_attention_args* args, void* stream);

#ifdef __cplusplus
}
#endif
