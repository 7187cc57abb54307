import type { KernelCall, KernelRun, KernelParams, KernelSegment } from "./binding.js";

export type { KernelCall, KernelRun, KernelParams, KernelSegment };

/**
 * Runs one kernel on GPU 0 through the engine's own launcher and returns every tensor after
 * the run (write-only outputs start as NaN); `iterations` more launches are then timed.
 * Throws `APB_ERROR:{code, message, path}`: CUDA_UNAVAILABLE without a GPU, INVALID_INPUT for
 * an unknown kernel or a missing tensor or parameter.
 */
export declare function runKernel(call: Omit<KernelCall, "params"> & { params: KernelParams | string }): KernelRun;
