// APB attention on the GPU: query rows over key segments read in place, with GQA, writing
// O (bf16) and LSE (fp32, natural log). The C ABI the engine (through cudarc) and the GPU
// checks (through ctypes) call.
#pragma once
#include <stdint.h>

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

// Error codes: 0 ok; otherwise the shape or launch problem, described by apb_error_text.
enum {
  APB_OK = 0,
  APB_BAD_HEAD_DIM = 1,
  APB_BAD_HEADS = 2,
  APB_BAD_SEGMENTS = 3,
  APB_BAD_POINTER = 4,
  APB_LAUNCH_FAILED = 5,
};

int apb_attention_bf16(const apb_attention_args* args, void* stream);
const char* apb_error_text(int code);

#ifdef __cplusplus
}
#endif
