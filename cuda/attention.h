// APB attention on the GPU: query rows over key segments read in place, with GQA, writing
// O (bf16) and LSE (fp32, natural log). The C ABI the engine (through cudarc) and the GPU
// checks (through ctypes) call.
#pragma once
#include <stdint.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

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

// The segments as the kernels take them (by value), for launches through the driver API.
typedef struct {
  apb_segment s[APB_MAX_SEGMENTS];
  int32_t n;
} apb_segment_list;

typedef struct {
  const void* q;  // [rows][q_heads][head_dim] bf16
  void* o;        // [rows][q_heads][head_dim] bf16
  float* lse;     // [rows][q_heads]
  int64_t rows;
  int32_t q_heads;
  int32_t kv_heads;
  int32_t head_dim;  // 64 or 128
  int32_t segment_count;
  apb_segment segments[APB_MAX_SEGMENTS];
} apb_attention_args;

// Returns an apb_status (status.h): APB_OK, or the shape or launch problem, described by
// apb_error_text.
int apb_attention_bf16(const apb_attention_args* args, void* stream);

// Kernel entry points (extern "C", so the driver API finds them by name): grid
// (ceil(rows / APB_ATTENTION_BLOCK_ROWS), q_heads), APB_ATTENTION_THREADS threads,
// apb_attention_smem_bytes(head_dim) bytes of dynamic shared memory. Parameters:
// (const bf16* q, bf16* o, float* lse, int64_t rows, int32_t q_heads, int32_t kv_heads,
//  apb_segment_list segments). Entry names: apb_attention_d64, apb_attention_d128.
#define APB_ATTENTION_BLOCK_ROWS 128
#define APB_ATTENTION_THREADS 128
#define APB_ATTENTION_PAD 8
#define apb_attention_smem_bytes(head_dim) ((APB_ATTENTION_BLOCK_ROWS + 2 * 64) * ((head_dim) + APB_ATTENTION_PAD) * 2)
// apb_status_text(code), exported for callers through ctypes.
const char* apb_error_text(int code);

#ifdef __cplusplus
}
#endif
