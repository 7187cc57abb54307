import { encodeFrame, type ErrorData, type JobResult, type JobSpec, type JobSummary, type StatusSnapshot } from "@apb/protocol";
import type { Peer } from "./peer.js";

/** Status goes out at most this often (4 a second), however fast the group changes. */
export const STATUS_MIN_INTERVAL_MS = 250;
/** And at least this often, so a watcher's "last seen" ages stay fresh and a silent coordinator means a dead one. */
export const STATUS_REFRESH_MS = 2000;
/** A watcher with more than this unsent is lagging: its frames are dropped (never queued) until it drains, then it is sent the state afresh. */
export const WATCHER_BUFFER_LIMIT = 4 * 1024 * 1024;

/** The job the group runs now, as watchers are told of it. */
export interface WatchedJob {
  jobId: string;
  groupId: string;
  summary: JobSummary;
}

/** What a watcher may see of a job: its sizes and settings, never its token ids. */
export function summarize(spec: JobSpec, hosts: number): JobSummary {
  return {
    contextTokens: spec.context.length,
    queryTokens: spec.query.length,
    prefixTokens: spec.prefixTokens,
    strategy: spec.strategy,
    hosts,
    anchorTokens: spec.anchorTokens ?? null,
    passingTokens: spec.passingTokens ?? null,
    balanced: spec.balanced ?? null,
    scorer: spec.scorer ?? null,
    maxTokens: spec.maxTokens,
  };
}

/** The part of a peer the watchers use (a test passes a fake). */
export type WatcherPeer = Pick<Peer, "open" | "sendFrame" | "label"> & { socket: { bufferedAmount: number } };

/**
 * Callers that asked to watch: the group's status when it changes (throttled) and the running
 * job's events. Sending never waits: a slow watcher's frames are dropped, a closed one's ignored,
 * so no watcher can hold up a job.
 */
export class Watchers {
  private readonly peers = new Set<WatcherPeer>();
  private readonly lagging = new Set<WatcherPeer>();
  private timer: NodeJS.Timeout | null = null;
  private refresh: NodeJS.Timeout | null = null;
  private lastSentAt = -Infinity;
  private lastSignature = "";

  constructor(
    private readonly source: { status(): StatusSnapshot; running(): WatchedJob | null },
    private readonly log: (line: string) => void,
  ) {}

  get size(): number {
    return this.peers.size;
  }

  /** Starts watching (again): the status and the running job go out at once. */
  add(peer: WatcherPeer): void {
    const first = !this.peers.has(peer);
    this.peers.add(peer);
    this.lagging.delete(peer);
    if (first) this.log(`${peer.label} is watching`);
    this.catchUp(peer);
    this.refresh ??= setInterval(() => this.changed(), STATUS_REFRESH_MS);
    this.refresh.unref?.();
  }

  remove(peer: WatcherPeer): void {
    this.peers.delete(peer);
    this.lagging.delete(peer);
    if (this.peers.size === 0) this.stopTimers();
  }

  /** Something a status shows may have changed: one status goes out within STATUS_MIN_INTERVAL_MS. */
  changed(): void {
    if (this.peers.size === 0 || this.timer) return;
    const delay = Math.max(0, this.lastSentAt + STATUS_MIN_INTERVAL_MS - performance.now());
    this.timer = setTimeout(() => this.flush(), delay);
    this.timer.unref?.();
  }

  jobStarted(job: WatchedJob): void {
    this.broadcast(encodeFrame({ type: "jobStarted", jobId: job.jobId, groupId: job.groupId, job: job.summary }));
    this.changed();
  }

  jobProgress(jobId: string, progress: { rank: number; phase: string; done: number; total: number }): void {
    if (this.peers.size === 0) return;
    this.broadcast(encodeFrame({ type: "jobProgress", jobId, ...progress }));
  }

  jobDone(result: JobResult): void {
    if (this.peers.size > 0) {
      const hosts = result.hosts.map(({ tokens: _tokens, firstLogits: _logits, ...timings }) => timings);
      this.broadcast(encodeFrame({ type: "jobDone", jobId: result.jobId, wallMs: result.wallMs, firstTokenMs: result.firstTokenMs, hosts }));
    }
    this.changed();
  }

  jobFailed(jobId: string, error: ErrorData): void {
    if (this.peers.size > 0) this.broadcast(encodeFrame({ type: "jobFailed", jobId, error }));
    this.changed();
  }

  close(): void {
    this.stopTimers();
    this.peers.clear();
    this.lagging.clear();
  }

  private stopTimers(): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.refresh) clearInterval(this.refresh);
    this.timer = null;
    this.refresh = null;
  }

  private flush(): void {
    this.timer = null;
    if (this.peers.size === 0) return;
    const status = this.source.status();
    // Ages change every moment; only what else changed counts, plus a refresh now and then.
    const signature = JSON.stringify({ ...status, hosts: status.hosts.map(({ lastSeenMs: _age, ...rest }) => rest) });
    const now = performance.now();
    if (signature === this.lastSignature && now - this.lastSentAt < STATUS_REFRESH_MS - STATUS_MIN_INTERVAL_MS) return;
    this.lastSignature = signature;
    this.lastSentAt = now;
    this.broadcast(encodeFrame({ type: "status", status }));
  }

  private catchUp(peer: WatcherPeer): void {
    if (!peer.open) return;
    peer.sendFrame(encodeFrame({ type: "status", status: this.source.status() }));
    const job = this.source.running();
    if (job) peer.sendFrame(encodeFrame({ type: "jobStarted", jobId: job.jobId, groupId: job.groupId, job: job.summary }));
  }

  private broadcast(frame: string): void {
    for (const peer of this.peers) {
      if (!peer.open) continue;
      if (peer.socket.bufferedAmount > WATCHER_BUFFER_LIMIT) {
        if (!this.lagging.has(peer)) this.log(`${peer.label} is watching too slowly: its updates are dropped until it catches up`);
        this.lagging.add(peer);
        continue;
      }
      if (this.lagging.delete(peer)) this.catchUp(peer);
      peer.sendFrame(frame);
    }
  }
}
