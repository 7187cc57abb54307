// A group of hosts as the server's tests need one: in process, with a status the test sets,
// and jobs that do what the test plans (stream these ids, hold until released, fail with this
// error). Like a coordinator it runs one job at a time (the others wait, queued, in order) and
// rejects a job with CANCELLED when its signal aborts. It checks nothing the server sends.
import type { SubmitOptions } from "@apb/control-plane";
import type { HostJobResult, HostState, JobResult, JobSpec, StatusSnapshot } from "@apb/protocol";
import type { JobGroup } from "./group.js";

/** An error as a coordinator rejects with one: a code from @apb/errors and a message. */
export class FakeGroupError extends Error {
  readonly path = "";
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "FakeGroupError";
  }
}

/** What the next job does. */
export interface JobPlan {
  /** Ids streamed through onToken, then returned as the result's tokens (default: the group's `tokens`). */
  tokens?: number[];
  /** After streaming, wait for `release()` before ending. */
  hold?: boolean;
  /** End by rejecting with this error (after the tokens, and after release when held). */
  fail?: { code: string; message: string };
  /** Fail at once, before any progress or token (as a group that never formed). */
  failFirst?: boolean;
  /** Send no progress and stream no token: the ids come only in the result. */
  quiet?: boolean;
  /** End by throwing this (a bug's error, with no code), after the tokens. */
  crash?: Error;
}

export interface FakeJob {
  readonly spec: JobSpec;
  readonly io: SubmitOptions;
  readonly plan: JobPlan;
  /** True once the job left the fake's queue and began (progress sent). */
  started: boolean;
  /** Ids sent through onToken so far. */
  readonly sent: number[];
  /** How it ended: null while it runs or waits. */
  ended: "resolved" | "rejected" | null;
  /** Whether the job's signal has aborted. */
  readonly aborted: boolean;
  /** Lets a held job end. */
  release(): void;
}

export interface FakeHost {
  rank: number | null;
  state: HostState;
  hostname?: string;
  pid?: number;
}

/** A coordinator's status: `hosts` defaults to every rank ready. */
export function statusOf(o: { worldSize: number; formed: boolean; hosts?: FakeHost[] }): StatusSnapshot {
  const hosts = o.hosts ?? Array.from({ length: o.worldSize }, (_, rank): FakeHost => ({ rank, state: o.formed ? "joined" : "ready" }));
  const ready = new Set(hosts.filter((h) => h.rank !== null && h.state !== "loading").map((h) => h.rank));
  return {
    formed: o.formed,
    groupId: o.formed ? "group-1" : null,
    worldSize: o.worldSize,
    hosts: hosts.map((h, i) => ({
      hostId: `host-${i}`,
      rank: h.rank,
      facts: { backend: "cpu", hostname: h.hostname ?? `node${i}`, pid: h.pid ?? 1000 + i, gpus: [], freeMemoryBytes: null },
      state: h.state,
      lastSeenMs: 10,
    })),
    missing: Array.from({ length: o.worldSize }, (_, r) => r).filter((r) => !ready.has(r)).length,
    queuedJobs: 0,
    runningJobId: null,
    connections: hosts.length,
  };
}

/** Host `rank`'s report: every timing filled in, distinct per rank. */
function hostResult(rank: number, last: boolean, tokens: number[]): HostJobResult {
  return {
    rank,
    tokens: last ? tokens : [],
    firstLogits: null,
    anchorTokens: 4,
    passingTokens: 2,
    blockTokens: 16,
    timings: { prefillMs: 100 + 10 * rank, prefillWallMs: 150 + 10 * rank, computeMs: 90, commMs: 5 + rank, prefillRows: 20, phasesMs: { prefill: 100 } },
  };
}

export class FakeGroup implements JobGroup {
  readonly jobs: FakeJob[] = [];
  /** What status() returns; tests may replace it. */
  snapshot: StatusSnapshot;
  private readonly plans: JobPlan[] = [];
  /** The job that runs now; the next starts when it ends. */
  private chain: Promise<void> = Promise.resolve();

  constructor(
    /** Ids each job streams unless its plan says otherwise. */
    public tokens: number[],
    worldSize = 2,
  ) {
    this.snapshot = statusOf({ worldSize, formed: true });
  }

  /** Plans the next job submitted (plans are used in order; without one a job answers `tokens` at once). */
  next(plan: JobPlan): this {
    this.plans.push(plan);
    return this;
  }

  status(): StatusSnapshot {
    return this.snapshot;
  }

  submit(spec: JobSpec, io: SubmitOptions): Promise<JobResult> {
    const plan = this.plans.shift() ?? {};
    const signal = io.signal;
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const job: FakeJob = {
      spec,
      io,
      plan,
      started: false,
      sent: [],
      ended: null,
      get aborted() {
        return signal?.aborted ?? false;
      },
      release,
    };
    this.jobs.push(job);
    const cancelled = new Promise<never>((_, reject) => {
      const cancel = () => reject(new FakeGroupError("CANCELLED", "the caller cancelled the job"));
      if (signal?.aborted) cancel();
      else signal?.addEventListener("abort", cancel, { once: true });
    });
    const run = async (): Promise<JobResult> => {
      if (signal?.aborted) throw new FakeGroupError("CANCELLED", "the caller cancelled the job");
      if (plan.fail && plan.failFirst) throw new FakeGroupError(plan.fail.code, plan.fail.message);
      job.started = true;
      if (!plan.quiet) io.onProgress?.({ rank: 0, phase: "prefill", done: 1, total: 1 });
      const ids = plan.tokens ?? this.tokens;
      for (const id of plan.quiet ? [] : ids) {
        // One token per turn of the event loop, as they arrive from hosts.
        await new Promise((resolve) => setImmediate(resolve));
        if (signal?.aborted) throw new FakeGroupError("CANCELLED", "the caller cancelled the job");
        job.sent.push(id);
        io.onToken?.(id);
      }
      if (plan.hold) await released;
      if (plan.fail) throw new FakeGroupError(plan.fail.code, plan.fail.message);
      if (plan.crash) throw plan.crash;
      const worldSize = this.snapshot.worldSize;
      return {
        jobId: `job-${this.jobs.indexOf(job) + 1}`,
        tokens: [...ids],
        firstLogits: null,
        hosts: Array.from({ length: worldSize }, (_, rank) => hostResult(rank, rank === worldSize - 1, [...ids])),
        wallMs: 300,
        firstTokenMs: ids.length ? 200 : null,
      };
    };
    // Queued behind the job before it; an abort while queued ends it without starting it.
    const turn = this.chain.then(() => Promise.race([run(), cancelled]));
    const result = Promise.race([turn, cancelled]);
    this.chain = turn.then(
      () => undefined,
      () => undefined,
    );
    result.then(
      () => (job.ended = "resolved"),
      () => (job.ended = "rejected"),
    );
    return result;
  }
}
