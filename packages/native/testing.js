// "@apb/native/testing": one CUDA kernel run by name on tensors given as bytes, for the GPU
// checks (test/gpu), which compute their references elsewhere. Not for serving.
import { runKernel as runKernelBinding } from "./binding.js";

/** `params` may be given as an object or as JSON text (what the checks' manifest carries). */
export function runKernel(call) {
  const params = typeof call.params === "string" ? JSON.parse(call.params) : call.params;
  return runKernelBinding({ ...call, params: params ?? {} });
}
