// Merging partial attention outputs by their log-sum-exp: decode and ring attention combine
// what each host (or ring step) computed over its own keys.
#pragma once
#include <stdint.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define APB_MAX_MERGE_PARTS 16

typedef struct {
  const void* o[APB_MAX_MERGE_PARTS];     // each [rows][heads][head_dim] bf16
  const float* lse[APB_MAX_MERGE_PARTS];  // each [rows][heads], natural log, -inf for "saw nothing"
  int32_t parts;
  void* out_o;       // [rows][heads][head_dim] bf16
  float* out_lse;    // [rows][heads]
  int64_t rows;
  int32_t heads;
  int32_t head_dim;  // a multiple of 8
} apb_merge_args;

// The kernel's parts, passed by value.
typedef struct {
  const void* o[APB_MAX_MERGE_PARTS];
  const float* lse[APB_MAX_MERGE_PARTS];
} apb_merge_parts;

// Kernel entry apb_merge_bf16_kernel(apb_merge_parts parts, int32_t part_count, bf16* out_o,
// float* out_lse, int64_t pairs (= rows * heads), int32_t head_dim): one thread per 8
// elements of a (row, head), grid ceil(pairs * head_dim / 8 / APB_MERGE_THREADS).
#define APB_MERGE_THREADS 256

// Returns an apb_status (status.h): APB_BAD_SHAPE for head_dim not a multiple of 8, parts
// outside 1..16 or rows or heads negative; APB_BAD_POINTER for a null pointer;
// APB_LAUNCH_FAILED.
int apb_merge_bf16(const apb_merge_args* args, void* stream);

#ifdef __cplusplus
}
#endif
