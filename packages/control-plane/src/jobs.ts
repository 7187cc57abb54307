import type { HostJobResult, JobResult, JobSpec } from "@apb/protocol";
import { ControlPlaneError } from "./errors.js";

export interface JobProgress {
  rank: number;
  phase: string;
  done: number;
  total: number;
}

export interface SubmitOptions {
  /** Each token of the last rank, in order, as the coordinator receives it. */
  onToken?(tokenId: number): void;
  onProgress?(progress: JobProgress): void;
  /** Aborting cancels the job: queued, it leaves the queue; running, every host is told to abort. */
  signal?: AbortSignal;
  /** How long the job may wait for the group to form (default: the coordinator's, 60 s). */
  groupTimeoutMs?: number;
}

/** Where a job's events go: an in-process caller's callbacks, or a remote caller's socket. */
export interface JobSink {
  onToken(tokenId: number): void;
  onProgress(progress: JobProgress): void;
  resolve(result: JobResult): void;
  reject(error: ControlPlaneError): void;
}

/** A job from submit to its end, queued or running. */
export class Job {
  readonly submittedAt = performance.now();
  firstTokenAt: number | null = null;
  readonly results = new Map<number, HostJobResult>();
  groupId: string | null = null;
  /** Armed while the job waits for a group that is not formed. */
  groupTimer: NodeJS.Timeout | null = null;
  /** Armed when a host reported a COMM failure, to see first whether a peer of it died. */
  commTimer: NodeJS.Timeout | null = null;
  settled = false;

  constructor(
    readonly jobId: string,
    readonly spec: JobSpec,
    readonly sink: JobSink,
    readonly groupTimeoutMs: number,
    /** Undoes what submit hooked up (an AbortSignal listener) once the job ends. */
    readonly release: () => void = () => {},
  ) {}

  resolve(result: JobResult): void {
    if (this.settle()) this.sink.resolve(result);
  }

  reject(error: ControlPlaneError): void {
    if (this.settle()) this.sink.reject(error);
  }

  /** The result the caller gets: the last rank's tokens and logits, every host's report in rank order. */
  assemble(worldSize: number): JobResult {
    const hosts = Array.from({ length: worldSize }, (_, rank) => this.results.get(rank)!);
    const last = hosts[worldSize - 1]!;
    const now = performance.now();
    return {
      jobId: this.jobId,
      tokens: last.tokens,
      firstLogits: last.firstLogits,
      hosts,
      wallMs: now - this.submittedAt,
      firstTokenMs: this.firstTokenAt === null ? null : this.firstTokenAt - this.submittedAt,
    };
  }

  private settle(): boolean {
    if (this.settled) return false;
    this.settled = true;
    if (this.groupTimer) clearTimeout(this.groupTimer);
    this.groupTimer = null;
    if (this.commTimer) clearTimeout(this.commTimer);
    this.commTimer = null;
    this.release();
    return true;
  }
}
