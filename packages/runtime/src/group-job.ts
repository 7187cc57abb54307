// A request as a job for a group of hosts, and the job's result as the Generation an
// emulated run returns, so callers of a group (apb run, apb serve) report the same either way.
import { decodeLogits, type JobResult, type JobSpec } from "@apb/protocol";
import { describeGeneration, type Generation } from "./generation.js";
import type { ModelDir } from "./model-dir.js";
import type { PromptTokens } from "./prompt.js";
import type { HostRequest } from "./request.js";

export function jobOf(request: HostRequest): JobSpec {
  const { hosts: _hosts, ...job } = request;
  return job;
}

/** `firstTokenWallMs`: from submitting the job to its first token, as the caller saw it. */
export function generationOfJob(dir: ModelDir, request: HostRequest, prompt: PromptTokens, result: JobResult, firstTokenWallMs: number): Generation {
  const hosts = result.hosts.map((h) => ({ host: h.rank, prefillMs: h.timings.prefillMs, prefillRows: h.timings.prefillRows, phasesMs: { ...h.timings.phasesMs } }));
  const last = result.hosts.at(-1);
  return describeGeneration(dir, {
    strategy: request.strategy,
    prompt,
    stop: request.stopTokenIds,
    tokens: result.tokens,
    firstLogits: result.firstLogits ? decodeLogits(result.firstLogits) : new Float32Array(),
    sizes: { anchorTokens: last?.anchorTokens ?? 0, passingTokens: last?.passingTokens ?? 0, blockTokens: last?.blockTokens ?? 0 },
    hosts,
    prefillWallMs: Math.max(0, ...result.hosts.map((h) => h.timings.prefillWallMs)),
    firstTokenWallMs,
    // Each host is its own process (on this machine or others): nothing took turns.
    emulatedHosts: false,
    totalWallMs: result.wallMs,
  });
}
