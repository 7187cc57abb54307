// What the live view knows, built from the watch client's events (pure: no DOM).
import type { ErrorData, FromCoordinator, HostTimings, JobSummary, StatusSnapshot } from "@apb/protocol";

export interface HostProgress {
  phase: string;
  done: number;
  total: number;
}

export interface LiveJob {
  jobId: string;
  groupId: string;
  summary: JobSummary;
  /** By rank. */
  progress: Map<number, HostProgress>;
  outcome: { kind: "running" } | { kind: "done"; wallMs: number; firstTokenMs: number | null; hosts: HostTimings[] } | { kind: "failed"; error: ErrorData };
}

export interface LiveState {
  status: StatusSnapshot | null;
  /** The job running now, or the last one to end. */
  job: LiveJob | null;
}

export function emptyState(): LiveState {
  return { status: null, job: null };
}

/** Applies one message; returns whether the job changed (a new job, so a new plan is wanted). */
export function apply(state: LiveState, message: FromCoordinator): { newJob: boolean } {
  switch (message.type) {
    case "status":
      state.status = message.status;
      return { newJob: false };
    case "jobStarted":
      state.job = { jobId: message.jobId, groupId: message.groupId, summary: message.job, progress: new Map(), outcome: { kind: "running" } };
      return { newJob: true };
    case "jobProgress": {
      const job = state.job;
      if (job?.jobId === message.jobId) job.progress.set(message.rank, { phase: message.phase, done: message.done, total: message.total });
      return { newJob: false };
    }
    case "jobDone": {
      const job = state.job;
      if (job?.jobId === message.jobId) job.outcome = { kind: "done", wallMs: message.wallMs, firstTokenMs: message.firstTokenMs, hosts: message.hosts };
      return { newJob: false };
    }
    case "jobFailed": {
      const job = state.job;
      if (job?.jobId === message.jobId) job.outcome = { kind: "failed", error: message.error };
      return { newJob: false };
    }
    default:
      return { newJob: false };
  }
}

/** Layers done out of the total for a host's prefill, as a fraction in [0, 1]; null before it reports. */
export function prefillFraction(job: LiveJob, rank: number): number | null {
  if (job.outcome.kind === "done") return 1;
  const p = job.progress.get(rank);
  if (!p) return null;
  if (p.phase === "done") return 1;
  if (p.phase !== "prefill" || p.total <= 0) return 0;
  return Math.min(1, p.done / p.total);
}
