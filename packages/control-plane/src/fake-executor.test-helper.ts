// Test support: an executor with no engine. Tokens come from the job alone, so every rank agrees
// and a test can predict them; `run` can be slow, hang, or fail, and abort ends it at once.
import { encodeLogits, type HostFacts, type HostJobResult, type JobSpec } from "@apb/protocol";
import type { GroupMembership, HostExecutor, RunIO } from "./index.js";

export interface FakeOptions {
  hostname?: string;
  pid?: number;
  fingerprint?: string;
  dataAddress?: string | null;
  /** Pause before each token (ms). */
  tokenDelayMs?: number;
  /** run() never finishes by itself: only abort ends it. */
  hang?: boolean;
  /** run() rejects with this after its first token. */
  failWith?: { code: string; message: string; path: string };
  /** load() rejects with this. */
  loadFails?: { code: string; message: string; path: string };
  loadDelayMs?: number;
  /** The first this-many joinGroup calls reject (a data plane that fails to connect). */
  joinFailures?: number;
}

/** The tokens every rank produces for `job`: a function of the job, so tests can predict them. */
export function expectedTokens(job: JobSpec): number[] {
  const base = [...job.context, ...job.query].reduce((a, b) => (a * 31 + b) % 100_003, job.seed);
  return Array.from({ length: job.maxTokens }, (_, i) => (base + i * 7919) % 128_000);
}

export class FakeExecutor implements HostExecutor {
  /** What was called, in order: "load", "bootstrap 2", "join g1 1/2", "run 3", "abort ...", "leave". */
  readonly calls: string[] = [];
  group: GroupMembership | null = null;
  private aborts = new Set<(reason: string) => void>();

  /** Mutable, so a test can change how the host behaves between jobs. */
  constructor(readonly options: FakeOptions = {}) {}

  facts(): HostFacts {
    return { backend: "fake", hostname: this.options.hostname ?? "test-host", pid: this.options.pid ?? process.pid, gpus: [], freeMemoryBytes: null };
  }

  dataAddress(): string | null {
    return this.options.dataAddress === undefined ? "127.0.0.1:29500" : this.options.dataAddress;
  }

  async load(): Promise<{ fingerprint: string }> {
    this.calls.push("load");
    if (this.options.loadDelayMs) await sleep(this.options.loadDelayMs);
    if (this.options.loadFails) throw this.options.loadFails;
    return { fingerprint: this.options.fingerprint ?? "fake-model-1" };
  }

  async groupBootstrap(worldSize: number): Promise<string> {
    this.calls.push(`bootstrap ${worldSize}`);
    return `unique-id-${worldSize}`;
  }

  async joinGroup(group: GroupMembership): Promise<void> {
    this.calls.push(`join ${group.groupId} ${group.rank}/${group.worldSize}`);
    this.group = group;
    if ((this.options.joinFailures ?? 0) > 0) {
      this.options.joinFailures!--;
      throw { code: "COMM", message: `rank ${group.rank} could not reach rank 0`, path: "" };
    }
  }

  async run(job: JobSpec & { jobId: string }, io: RunIO): Promise<HostJobResult> {
    this.calls.push(`run ${job.jobId}`);
    const group = this.group!;
    let aborted: string | null = null;
    let wake = () => {};
    const onAbort = (reason: string) => {
      aborted = reason;
      wake();
    };
    this.aborts.add(onAbort);
    const abortable = (ms: number) =>
      new Promise<void>((resolve) => {
        const timer = ms === Infinity ? null : setTimeout(resolve, ms);
        wake = () => {
          if (timer) clearTimeout(timer);
          resolve();
        };
      });
    try {
      const tokens = expectedTokens(job);
      io.onProgress("prefill", 1, 1);
      if (this.options.hang) await abortable(Infinity);
      for (const [i, token] of tokens.entries()) {
        if (this.options.tokenDelayMs) await abortable(this.options.tokenDelayMs);
        if (aborted !== null) break;
        io.onToken(token);
        io.onProgress("decode", i + 1, tokens.length);
        if (this.options.failWith) throw this.options.failWith;
      }
      if (aborted !== null) throw { code: "COMM", message: `the data plane was torn down: ${String(aborted)}`, path: "" };
      const last = group.rank === group.worldSize - 1;
      return {
        rank: group.rank,
        tokens,
        firstLogits: last ? encodeLogits(new Float32Array([0.5, -1, tokens[0] ?? 0])) : null,
        anchorTokens: job.anchorTokens ?? 0,
        passingTokens: job.passingTokens ?? 0,
        blockTokens: Math.ceil(job.context.length / group.worldSize),
        timings: { prefillMs: 1, prefillWallMs: 1.5, computeMs: 0.75, commMs: 0.25, prefillRows: job.context.length, phasesMs: { prefill: 1 } },
      };
    } finally {
      this.aborts.delete(onAbort);
    }
  }

  abort(reason: string): void {
    this.calls.push(`abort ${reason}`);
    for (const abort of this.aborts) abort(reason);
  }

  async leaveGroup(): Promise<void> {
    this.calls.push("leave");
    this.group = null;
  }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
