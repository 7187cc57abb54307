import type { ErrorData, FromCaller, HostHello, JobSpec, StatusSnapshot } from "@apb/protocol";
import type { ControlPlaneError } from "./errors.js";
import type { Job, JobSink } from "./jobs.js";
import type { Peer } from "./peer.js";

/** What remote callers need from the coordinator: the same queue an in-process submit uses. */
export interface JobDesk {
  enqueue(spec: JobSpec, sink: JobSink, groupTimeoutMs: number): Job;
  cancel(job: Job, reason: string): void;
  /** Starts the next job if the group is free. */
  pump(): void;
  status(): StatusSnapshot;
  /** The peer gets the status now and whenever it changes, and every job's events. */
  watch(peer: Peer): void;
  /** BUSY when the queue is full, else null. */
  busy(): ControlPlaneError | null;
  refuse(peer: Peer, error: ErrorData): void;
  readonly groupTimeoutMs: number;
}

/**
 * Callers over the network: each connection's requests by their ids, turned into jobs whose
 * events go back over the socket. A connection that closes cancels its jobs.
 */
export class RemoteCallers {
  private readonly jobs = new Map<Peer, Map<string, Job>>();

  constructor(private readonly desk: JobDesk) {}

  add(peer: Peer): void {
    this.jobs.set(peer, new Map());
  }

  closed(peer: Peer): void {
    const jobs = this.jobs.get(peer);
    if (!jobs) return;
    this.jobs.delete(peer);
    for (const job of jobs.values()) this.desk.cancel(job, "the caller's connection closed");
  }

  onMessage(peer: Peer, message: FromCaller | HostHello): void {
    const jobs = this.jobs.get(peer);
    if (!jobs) return;
    switch (message.type) {
      case "hello":
        return this.desk.refuse(peer, { code: "DUPLICATE_HELLO", message: "this connection already said hello", path: "type" });
      case "status":
        return peer.send({ type: "status", status: this.desk.status() });
      case "watch":
        return this.desk.watch(peer);
      case "cancel": {
        const job = jobs.get(message.requestId);
        if (job) this.desk.cancel(job, "the caller cancelled it");
        return;
      }
      case "submit":
        return this.submit(peer, jobs, message.requestId, message.job, message.groupTimeoutMs);
    }
  }

  private submit(peer: Peer, jobs: Map<string, Job>, requestId: string, spec: JobSpec, groupTimeoutMs: number | undefined): void {
    const fail = (error: ErrorData) => peer.send({ type: "failed", requestId, error });
    if (jobs.has(requestId)) return fail({ code: "NOT_ALLOWED", message: `request ${requestId} is already in flight on this connection`, path: "requestId" });
    const busy = this.desk.busy();
    if (busy) return fail(busy.toJSON());
    const job = this.desk.enqueue(
      spec,
      {
        onToken: (tokenId) => peer.send({ type: "token", requestId, jobId: job.jobId, tokenId }),
        onProgress: (p) => peer.send({ type: "progress", requestId, jobId: job.jobId, ...p }),
        resolve: (result) => {
          jobs.delete(requestId);
          peer.send({ type: "done", requestId, result });
        },
        reject: (error) => {
          jobs.delete(requestId);
          peer.send({ type: "failed", requestId, error: error.toJSON() });
        },
      },
      groupTimeoutMs ?? this.desk.groupTimeoutMs,
    );
    jobs.set(requestId, job);
    peer.send({ type: "accepted", requestId, jobId: job.jobId });
    this.desk.pump();
  }
}
