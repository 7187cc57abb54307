// What every C launcher of apb's kernels returns: one numbering for all of them (attention,
// the Hopper attention, merge and the ops), so a status means the same whichever kernel
// returned it. crates/apb-cuda/src/status.rs mirrors this list (its test reads this file).
// Plain C with no CUDA headers: the public headers include it for their callers.
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  APB_OK = 0,
  APB_BAD_SHAPE = 1,       // a size is negative, zero where it must not be, or over a limit
  APB_BAD_HEAD_DIM = 2,    // head_dim is not one this kernel is built for
  APB_BAD_HEADS = 3,       // q_heads or kv_heads not positive, or kv_heads does not divide q_heads
  APB_BAD_SEGMENTS = 4,    // attention segments: too many, negative ranges, the causal one not last
  APB_BAD_POINTER = 5,     // a required device pointer is null
  APB_BAD_ALIGNMENT = 6,   // a pointer is not aligned as the kernel needs (16 bytes for scoring q and k)
  APB_LAUNCH_FAILED = 7,   // the launch (or setting its shared memory, or a TMA descriptor) failed
} apb_status;

// A sentence for each status (for the launchers' *_error_text exports).
static inline const char* apb_status_text(int status) {
  switch (status) {
    case APB_OK: return "ok";
    case APB_BAD_SHAPE: return "a size is out of range for this kernel (see its header)";
    case APB_BAD_HEAD_DIM: return "head_dim is not one this kernel is built for";
    case APB_BAD_HEADS: return "q_heads and kv_heads must be positive and kv_heads must divide q_heads";
    case APB_BAD_SEGMENTS: return "segments: at most 4, non-negative ranges with K/V pointers, the causal one last";
    case APB_BAD_POINTER: return "a required device pointer is null";
    case APB_BAD_ALIGNMENT: return "a pointer is not aligned as the kernel needs (see its header)";
    case APB_LAUNCH_FAILED: return "the kernel launch failed (see cudaGetLastError)";
    default: return "unknown status";
  }
}

#ifdef __cplusplus
}
#endif
