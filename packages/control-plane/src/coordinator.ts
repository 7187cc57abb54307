import type { Server } from "node:http";
import {
  CLOSE_CODES,
  encodeFrame,
  MAX_FRAME_BYTES,
  parseJob,
  type ErrorData,
  type CallerHello,
  type FromHost,
  type HostHello,
  type HostJobResult,
  type JobResult,
  type JobSpec,
  type StatusSnapshot,
} from "@apb/protocol";
import { WebSocketServer } from "ws";
import { RemoteCallers } from "./callers.js";
import { duration, hostLabel, plural, seconds } from "./describe.js";
import { ControlPlaneError } from "./errors.js";
import { Gate } from "./gate.js";
import { formationWait, groupTimeoutMessage, reformDelayMs, type Group, type HostRecord } from "./group.js";
import { Job, type JobSink, type SubmitOptions } from "./jobs.js";
import { listen } from "./listen.js";
import { resolveOptions, type CoordinatorOptions, type Settings } from "./options.js";
import type { Peer } from "./peer.js";
import { assignRank } from "./ranks.js";
import { summarize, Watchers, type WatchedJob } from "./watchers.js";

export type { CoordinatorOptions } from "./options.js";

/** How long a COMM failure waits for the death of a host that would explain it. */
const COMM_GRACE_MS = 500;

interface GroupWaiter {
  resolve(): void;
  reject(error: ControlPlaneError): void;
  timer: NodeJS.Timeout;
}

/**
 * Admits hosts and callers over WebSocket, forms the group (ranks, rank 0's data-plane bootstrap,
 * rendezvous), runs one job at a time on it, streams tokens to the caller, and dissolves and
 * re-forms the group when a host dies or a job is aborted. It knows no engine: hosts run jobs.
 */
export class Coordinator {
  private readonly server: WebSocketServer;
  private readonly gate: Gate;
  /** Admitted hosts in arrival order (standby hosts take free ranks in this order). */
  private readonly hosts = new Map<Peer, HostRecord>();
  private readonly slots: (HostRecord | null)[];
  private readonly callers: RemoteCallers;
  private readonly watchers: Watchers;
  private readonly waiters = new Set<GroupWaiter>();
  private group: Group | null = null;
  private queue: Job[] = [];
  private running: Job | null = null;
  private referenceFingerprint: { fingerprint: string; from: string } | null = null;
  private lastFormationError: string | null = null;
  private formationFailures = 0;
  private reformTimer: NodeJS.Timeout | null = null;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private heartbeatSeq = 0;
  private counters = { host: 0, group: 0, job: 0 };
  /** Set first thing in close(), so nothing starts while shutting down. */
  private shuttingDown = false;
  private closing: Promise<void> | null = null;
  private http: Server | null = null;
  private address = "";
  private readonly worldSize: number;
  private readonly log: (line: string) => void;

  static async start(options: CoordinatorOptions): Promise<Coordinator> {
    const coordinator = new Coordinator(resolveOptions(options));
    await coordinator.listen();
    return coordinator;
  }

  private constructor(private readonly settings: Settings) {
    this.worldSize = settings.hosts;
    this.log = settings.log;
    this.slots = Array.from({ length: this.worldSize }, () => null);
    this.gate = new Gate(settings, {
      admitHost: (peer, hello) => this.admitHost(peer, hello),
      admitCaller: (peer) => {
        this.callers.add(peer);
        this.log(`caller connected: ${peer.label}`);
        this.watchers.changed();
      },
      fromHost: (peer, message) => {
        const host = this.hosts.get(peer);
        if (host) this.onHostMessage(host, message);
      },
      fromCaller: (peer, message) => this.callers.onMessage(peer, message),
      // Gone now, not when the close handshake ends: a refused host must not hold its rank meanwhile.
      refused: (peer, error) => {
        const host = this.hosts.get(peer);
        if (host) this.removeHost(host, `was refused (${error.code})`);
      },
      closed: (peer, code) => this.onClose(peer, code),
      describe: (peer) => this.describePeer(peer),
    });
    this.callers = new RemoteCallers({
      enqueue: (spec, sink, groupTimeoutMs) => this.enqueue(spec, sink, groupTimeoutMs),
      cancel: (job, reason) => this.cancel(job, reason),
      pump: () => this.pump(),
      status: () => this.status(),
      watch: (peer) => this.watchers.add(peer),
      busy: () => this.busy(),
      refuse: (peer, error) => this.gate.refuse(peer, error),
      groupTimeoutMs: settings.groupTimeoutMs,
    });
    this.watchers = new Watchers({ status: () => this.status(), running: () => this.watchedJob() }, this.log);
    this.server = new WebSocketServer({
      // listen() runs the HTTP server and hands upgrades over, so a port in use rejects start().
      noServer: true,
      // ws refuses a frame over maxPayload before buffering it whole, closing with 1009.
      maxPayload: MAX_FRAME_BYTES,
      // Token ids compress well, but inflating is where a hostile peer's small frame becomes a large allocation.
      perMessageDeflate: false,
      clientTracking: false,
    });
  }

  /** "ws://127.0.0.1:PORT" */
  get url(): string {
    return this.address;
  }

  // ---------------------------------------------------------------- public API

  status(): StatusSnapshot {
    const hosts = [...this.hosts.values()].sort((a, b) => (a.rank ?? Infinity) - (b.rank ?? Infinity));
    const now = Date.now();
    return {
      formed: this.group?.phase === "formed",
      groupId: this.group?.groupId ?? null,
      worldSize: this.worldSize,
      hosts: hosts.map((h) => ({ hostId: h.hostId, rank: h.rank, facts: h.facts, state: h.state, lastSeenMs: Math.max(0, now - h.peer.lastSeenAt) })),
      missing: this.slots.filter((h) => h === null || h.state === "loading").length,
      queuedJobs: this.queue.length,
      runningJobId: this.running?.jobId ?? null,
      connections: this.gate.peers.size,
    };
  }

  /** Resolves once the group is formed (status() then shows it); rejects with GROUP_TIMEOUT naming who is missing. */
  waitForGroup(timeoutMs: number): Promise<void> {
    if (this.shuttingDown) return Promise.reject(shutdownError());
    if (this.group?.phase === "formed") return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter: GroupWaiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters.delete(waiter);
          reject(this.groupTimeoutError(timeoutMs));
        }, timeoutMs),
      };
      this.waiters.add(waiter);
    });
  }

  /** Runs a job on the group (queued behind any other); resolves when every host has reported. */
  submit(job: JobSpec, io: SubmitOptions = {}): Promise<JobResult> {
    if (this.shuttingDown) return Promise.reject(shutdownError());
    const checked = parseJob(job);
    if (!checked.ok) return Promise.reject(new ControlPlaneError(checked.error));
    if (io.signal?.aborted) return Promise.reject(new ControlPlaneError({ code: "CANCELLED", message: "the job was cancelled before it was submitted" }));
    const busy = this.busy();
    if (busy) return Promise.reject(busy);
    return new Promise<JobResult>((resolve, reject) => {
      const signal = io.signal;
      const onAbort = () => this.cancel(queued, "the caller cancelled it");
      const guarded = <A extends unknown[]>(name: string, fn: ((...args: A) => void) | undefined) => (...args: A) => {
        try {
          fn?.(...args);
        } catch (e) {
          this.log(`job ${queued.jobId}: the caller's ${name} threw: ${e instanceof Error ? e.message : String(e)}`);
        }
      };
      const sink: JobSink = { onToken: guarded("onToken", io.onToken), onProgress: guarded("onProgress", io.onProgress), resolve, reject };
      const queued = this.enqueue(checked.message, sink, io.groupTimeoutMs ?? this.settings.groupTimeoutMs, () => signal?.removeEventListener("abort", onAbort));
      signal?.addEventListener("abort", onAbort, { once: true });
      this.pump();
    });
  }

  /** Aborts any job, dissolves the group, closes every connection and the server. */
  close(): Promise<void> {
    if (!this.closing) {
      this.shuttingDown = true;
      this.closing = this.shutdown();
    }
    return this.closing;
  }

  // ---------------------------------------------------------------- connections

  private async listen(): Promise<void> {
    const { http, url } = await listen(this.settings.host, this.settings.port, (req, socket, head) => {
      this.server.handleUpgrade(req, socket, head, (ws) => {
        this.gate.accept(ws, req, this.shuttingDown ? { code: CLOSE_CODES.SHUTDOWN, reason: "the coordinator is shutting down" } : null);
      });
    });
    this.http = http;
    this.address = url;
    this.heartbeatTimer = setInterval(() => this.tick(), this.settings.heartbeatMs);
    this.log(`coordinator listening on ${url} for ${plural(this.worldSize, "host")} (model ${this.settings.model.path})`);
  }

  private describePeer(peer: Peer): string {
    const host = this.hosts.get(peer);
    if (host) return hostLabel(host);
    return peer.role === "caller" ? `caller ${peer.label}` : peer.label;
  }

  private onClose(peer: Peer, code: number): void {
    const host = this.hosts.get(peer);
    if (host) {
      const how = peer.refusal
        ? `was refused (${peer.refusal.code})`
        : code === CLOSE_CODES.NORMAL
          ? "left: it closed its connection"
          : "died: its socket closed";
      this.removeHost(host, how);
    }
    this.callers.closed(peer);
    this.watchers.remove(peer);
    this.watchers.changed();
  }

  private watchedJob(): WatchedJob | null {
    const job = this.running;
    if (!job || job.groupId === null) return null;
    return { jobId: job.jobId, groupId: job.groupId, summary: summarize(job.spec, this.worldSize) };
  }

  // ---------------------------------------------------------------- hosts

  private admitHost(peer: Peer, hello: HostHello): void {
    const host: HostRecord = {
      hostId: `h${++this.counters.host}`,
      peer,
      facts: hello.facts,
      dataAddress: hello.dataAddress,
      rankHint: hello.rankHint,
      rank: assignRank(hello.rankHint, this.slots),
      state: "loading",
      fingerprint: null,
      answered: true,
      misses: 0,
    };
    if (host.rank !== null) this.slots[host.rank] = host;
    peer.role = "host";
    this.hosts.set(peer, host);
    const hint = hello.rankHint === undefined ? "" : hello.rankHint === host.rank ? " (its hint)" : ` (hint ${hello.rankHint} was ${hello.rankHint < this.worldSize ? "taken" : "out of range"})`;
    const role = host.rank === null ? `standby: all ${this.worldSize} ranks are taken` : `rank ${host.rank}${hint}`;
    this.log(`${hostLabel(host)} joined as ${host.hostId}, ${role}; ${hello.facts.backend}, ${plural(hello.facts.gpus.length, "GPU")}; loading the model`);
    this.watchers.changed();
    peer.send({ type: "welcome", hostId: host.hostId, model: { path: this.settings.model.path, fingerprint: this.expectedFingerprint() }, heartbeatMs: this.settings.heartbeatMs });
  }

  private expectedFingerprint(): string | null {
    return this.settings.model.fingerprint ?? this.referenceFingerprint?.fingerprint ?? null;
  }

  private onHostMessage(host: HostRecord, message: FromHost | CallerHello): void {
    switch (message.type) {
      case "hello":
        return this.gate.refuse(host.peer, { code: "DUPLICATE_HELLO", message: "this connection already said hello", path: "type" });
      case "heartbeat":
        host.answered = true;
        return;
      case "ready":
        return this.onReady(host, message.fingerprint);
      case "bootstrap":
        return this.onBootstrap(host, message.groupId, message.bootstrap);
      case "joined":
        return this.onJoined(host, message.groupId);
      case "progress": {
        const job = this.runningFor(host, message.jobId);
        if (!job) return;
        const progress = { rank: host.rank!, phase: message.phase, done: message.done, total: message.total };
        job.sink.onProgress(progress);
        this.watchers.jobProgress(job.jobId, progress);
        return;
      }
      case "token": {
        const job = this.runningFor(host, message.jobId);
        // Every rank generates the same tokens; the last rank's are the ones forwarded.
        if (!job || host.rank !== this.worldSize - 1) return;
        job.firstTokenAt ??= performance.now();
        job.sink.onToken(message.tokenId);
        return;
      }
      case "result":
        return this.onResult(host, message.jobId, message.result);
      case "error":
        return this.onHostError(host, message.jobId, message.error);
    }
  }

  private onReady(host: HostRecord, fingerprint: string): void {
    if (host.state !== "loading") return this.log(`${hostLabel(host)} said ready twice; ignored`);
    const expected = this.expectedFingerprint();
    if (expected !== null && fingerprint !== expected) {
      const source = this.settings.model.fingerprint !== null ? "the coordinator's" : `the first ready host's, ${this.referenceFingerprint!.from}`;
      return this.gate.refuse(host.peer, {
        code: "MODEL_MISMATCH",
        message: `${hostLabel(host)} loaded a model with fingerprint ${fingerprint}, but the group's is ${expected} (${source}): load ${this.settings.model.path} on every host`,
        path: "fingerprint",
      });
    }
    if (expected === null) this.referenceFingerprint = { fingerprint, from: hostLabel(host) };
    host.fingerprint = fingerprint;
    host.state = host.rank === null ? "standby" : "ready";
    this.log(`${hostLabel(host)} is ready (model ${fingerprint})${host.rank === null ? ", waiting as standby" : ""}`);
    this.watchers.changed();
    this.maybeForm();
  }

  /** A host is gone (socket closed, refused, or heartbeats stopped): free its rank, and end its group's job and the group. */
  private removeHost(host: HostRecord, how: string): void {
    if (!this.hosts.has(host.peer)) return;
    const label = hostLabel(host);
    this.hosts.delete(host.peer);
    if (host.rank !== null && this.slots[host.rank] === host) this.slots[host.rank] = null;
    if (!host.peer.refusal || how.startsWith("died")) this.log(`${label} ${how}`);
    const group = this.group;
    if (group?.members.includes(host)) {
      const job = this.running;
      if (job && job.groupId === group.groupId) {
        const reason = `${label} ${how} during job ${job.jobId}`;
        this.abortRunning(new ControlPlaneError({ code: "HOST_LOST", message: reason }), reason, host.rank);
      } else {
        this.dissolve(`${label} ${how}`);
      }
    }
    this.fillSlots();
    this.maybeForm();
    this.watchers.changed();
  }

  /** Free ranks go to hosts without one, in arrival order, by hint where it is free. */
  private fillSlots(): void {
    for (const host of this.hosts.values()) {
      if (host.rank !== null) continue;
      const rank = assignRank(host.rankHint, this.slots);
      if (rank === null) return;
      host.rank = rank;
      this.slots[rank] = host;
      if (host.state === "standby") host.state = "ready";
      this.watchers.changed();
      this.log(`${host.hostId} (pid ${host.facts.pid} on ${host.facts.hostname}) takes rank ${rank}`);
    }
  }

  /** Sends each host a heartbeat; one that has not echoed the last `missedHeartbeats` in a row is dead. */
  private tick(): void {
    const { heartbeatMs, missedHeartbeats } = this.settings;
    const seq = ++this.heartbeatSeq;
    for (const host of [...this.hosts.values()]) {
      host.misses = host.answered ? 0 : host.misses + 1;
      host.answered = false;
      if (host.misses >= missedHeartbeats) {
        const how = `died: it missed ${host.misses} heartbeats in a row (${heartbeatMs} ms apart)`;
        host.peer.refuse({ code: "HOST_LOST", message: `no heartbeat answered in ${host.misses * heartbeatMs} ms`, path: "" }, CLOSE_CODES.HEARTBEAT_TIMEOUT);
        this.removeHost(host, how);
        continue;
      }
      host.peer.send({ type: "heartbeat", seq });
    }
  }

  // ---------------------------------------------------------------- the group

  private maybeForm(): void {
    if (this.shuttingDown || this.group || this.reformTimer) return;
    if (!this.slots.every((h) => h !== null && h.state === "ready")) return;
    const members = this.slots as HostRecord[];
    const group: Group = { groupId: `g${++this.counters.group}`, members: [...members], phase: "bootstrap", joined: new Set(), formTimer: null };
    this.group = group;
    group.formTimer = setTimeout(() => {
      if (this.group === group) this.formationFailed(`group ${group.groupId} did not form within ${seconds(this.settings.formTimeoutMs)} (${formationWait(group)})`);
    }, this.settings.formTimeoutMs);
    for (const member of members) member.state = "forming";
    this.watchers.changed();
    this.log(`forming group ${group.groupId} of ${this.worldSize}: asking ${hostLabel(members[0]!)} for the data plane's bootstrap`);
    members[0]!.peer.send({ type: "bootstrapRequest", groupId: group.groupId, worldSize: this.worldSize });
  }

  private onBootstrap(host: HostRecord, groupId: string, bootstrap: string): void {
    const group = this.group;
    if (!group || group.groupId !== groupId || group.phase !== "bootstrap" || group.members[0] !== host) return; // stale: from a dissolved group
    group.phase = "rendezvous";
    const addresses = group.members.map((m) => m.dataAddress);
    group.members.forEach((member, rank) => {
      member.peer.send({ type: "rendezvous", groupId, rank, worldSize: this.worldSize, addresses, bootstrap });
    });
  }

  private onJoined(host: HostRecord, groupId: string): void {
    const group = this.group;
    if (!group || group.groupId !== groupId || group.phase !== "rendezvous" || !group.members.includes(host)) return;
    group.joined.add(host);
    if (group.joined.size < this.worldSize) return;
    group.phase = "formed";
    if (group.formTimer) clearTimeout(group.formTimer);
    this.formationFailures = 0;
    this.lastFormationError = null;
    for (const member of group.members) member.state = "joined";
    this.watchers.changed();
    this.log(`group ${group.groupId} formed: ${group.members.map((m) => hostLabel(m)).join(", ")}`);
    for (const job of this.queue) this.disarmGroupTimer(job);
    for (const waiter of this.waiters) {
      clearTimeout(waiter.timer);
      waiter.resolve();
    }
    this.waiters.clear();
    this.pump();
  }

  /**
   * Ends the group: after an abort or a lost host its data plane may be broken, so every member
   * leaves it and the next group is formed afresh (new bootstrap, new rendezvous).
   */
  private dissolve(reason: string, reformDelayMs = 0): void {
    const group = this.group;
    if (!group) return;
    this.group = null;
    if (group.formTimer) clearTimeout(group.formTimer);
    for (const member of group.members) {
      if (!this.hosts.has(member.peer)) continue;
      member.peer.send({ type: "dissolve", groupId: group.groupId, reason });
      member.state = "ready";
    }
    this.log(`group ${group.groupId} dissolved: ${reason}`);
    this.watchers.changed();
    for (const job of this.queue) this.armGroupTimer(job);
    if (reformDelayMs > 0 && !this.shuttingDown) {
      this.reformTimer = setTimeout(() => {
        this.reformTimer = null;
        this.maybeForm();
      }, reformDelayMs);
    }
  }

  private groupTimeoutError(timeoutMs: number): ControlPlaneError {
    return new ControlPlaneError({ code: "GROUP_TIMEOUT", message: groupTimeoutMessage(this.slots, this.group, this.lastFormationError, timeoutMs) });
  }

  /** Gives up on the forming group; tries again after a delay that doubles with each failure in a row. */
  private formationFailed(why: string): void {
    this.lastFormationError = why;
    const delayMs = reformDelayMs(this.formationFailures++);
    this.dissolve(`it failed to form: ${why}; retrying in ${seconds(delayMs)}`, delayMs);
  }

  // ---------------------------------------------------------------- jobs

  private enqueue(spec: JobSpec, sink: JobSink, groupTimeoutMs: number, release?: () => void): Job {
    const job = new Job(String(++this.counters.job), spec, sink, groupTimeoutMs, release);
    this.queue.push(job);
    this.armGroupTimer(job);
    this.watchers.changed();
    return job;
  }

  private busy(): ControlPlaneError | null {
    const queued = this.queue.length;
    return queued < this.settings.maxQueuedJobs ? null : new ControlPlaneError({ code: "BUSY", message: `${queued} jobs are already waiting; try again later` });
  }

  private armGroupTimer(job: Job): void {
    if (this.group?.phase === "formed" || job.groupTimer || job.settled) return;
    job.groupTimer = setTimeout(() => {
      job.groupTimer = null;
      const at = this.queue.indexOf(job);
      if (at === -1 || this.group?.phase === "formed") return;
      this.queue.splice(at, 1);
      const error = this.groupTimeoutError(job.groupTimeoutMs);
      this.log(`job ${job.jobId} failed: ${error.message}`);
      job.reject(error);
      this.watchers.changed();
    }, job.groupTimeoutMs);
  }

  private disarmGroupTimer(job: Job): void {
    if (job.groupTimer) clearTimeout(job.groupTimer);
    job.groupTimer = null;
  }

  /** Starts the next job when the group is formed and idle. */
  private pump(): void {
    const group = this.group;
    if (this.shuttingDown || this.running || group?.phase !== "formed") return;
    const job = this.queue.shift();
    if (!job) return;
    this.disarmGroupTimer(job);
    this.running = job;
    job.groupId = group.groupId;
    for (const member of group.members) member.state = "running";
    // Encoded once: a long context is megabytes, the same for every host.
    const frame = encodeFrame({ type: "job", jobId: job.jobId, groupId: group.groupId, job: job.spec });
    for (const member of group.members) member.peer.sendFrame(frame);
    const s = job.spec;
    this.log(`job ${job.jobId} started on group ${group.groupId}: ${s.strategy}, ${s.context.length} context + ${s.query.length} query tokens, up to ${s.maxTokens} new`);
    this.watchers.jobStarted({ jobId: job.jobId, groupId: group.groupId, summary: summarize(s, this.worldSize) });
  }

  /** The running job if `jobId` names it and `host` is in its group; messages about other jobs are stale. */
  private runningFor(host: HostRecord, jobId: string): Job | null {
    const job = this.running;
    if (!job || job.jobId !== jobId || !this.group || this.group.groupId !== job.groupId || !this.group.members.includes(host)) return null;
    return job;
  }

  private onResult(host: HostRecord, jobId: string, result: HostJobResult): void {
    const job = this.runningFor(host, jobId);
    if (!job) return;
    job.results.set(host.rank!, { ...result, rank: host.rank! });
    if (job.results.size < this.worldSize) return;
    this.running = null;
    for (const member of this.group!.members) member.state = "joined";
    const assembled = job.assemble(this.worldSize);
    this.log(`job ${job.jobId} done in ${duration(assembled.wallMs)}: ${plural(assembled.tokens.length, "token")}`);
    job.resolve(assembled);
    this.watchers.jobDone(assembled);
    this.pump();
  }

  private onHostError(host: HostRecord, jobId: string | null, error: ErrorData): void {
    const label = hostLabel(host);
    if (jobId !== null) {
      const job = this.runningFor(host, jobId);
      if (!job) return; // a job already ended (its abort makes every other host fail too)
      const fail = () => {
        if (this.running !== job) return;
        const reason = `${label} failed job ${job.jobId}: ${error.code}: ${error.message}`;
        this.abortRunning(new ControlPlaneError({ code: error.code, message: `${label}: ${error.message}`, path: error.path }), reason, host.rank);
        this.maybeForm();
      };
      if (error.code !== "COMM") return fail();
      // A host whose peer died often finds its data plane broken before the dead peer's socket
      // close reaches this process. Waiting a moment lets that close end the job as HOST_LOST,
      // naming the host that died rather than the one that noticed; a COMM failure with no
      // death behind it still fails the job, COMM_GRACE_MS later.
      job.commTimer ??= setTimeout(fail, COMM_GRACE_MS);
      return;
    }
    const group = this.group;
    if (group && group.phase !== "formed" && group.members.includes(host)) return this.formationFailed(`${label}: ${error.code}: ${error.message}`);
    this.log(`${label} reported ${error.code}: ${error.message}`);
  }

  private cancel(job: Job, reason: string): void {
    if (job.settled) return;
    const at = this.queue.indexOf(job);
    if (at !== -1) {
      this.queue.splice(at, 1);
      this.log(`job ${job.jobId} cancelled while queued: ${reason}`);
      job.reject(new ControlPlaneError({ code: "CANCELLED", message: `job ${job.jobId} was cancelled: ${reason}` }));
      this.watchers.changed();
      return;
    }
    if (this.running === job) {
      this.abortRunning(new ControlPlaneError({ code: "CANCELLED", message: `job ${job.jobId} was cancelled: ${reason}` }), reason, null);
      this.maybeForm();
    }
  }

  /** Tells every other host of the group to abort the running job, fails it, and dissolves the group. */
  private abortRunning(error: ControlPlaneError, reason: string, rootCauseHost: number | null): void {
    const job = this.running;
    if (!job) return;
    this.running = null;
    const group = this.group;
    for (const member of group?.members ?? []) {
      if (member.rank === rootCauseHost || !this.hosts.has(member.peer)) continue;
      member.peer.send({ type: "abort", jobId: job.jobId, reason, rootCauseHost });
    }
    this.log(`job ${job.jobId} aborted: ${reason}`);
    job.reject(error);
    this.watchers.jobFailed(job.jobId, error.toJSON());
    this.dissolve(`job ${job.jobId} was aborted`);
  }

  // ---------------------------------------------------------------- shutdown

  private async shutdown(): Promise<void> {
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    if (this.reformTimer) clearTimeout(this.reformTimer);
    this.reformTimer = null;
    const error = shutdownError();
    for (const job of this.queue.splice(0)) job.reject(error);
    if (this.running) this.abortRunning(error, "the coordinator is shutting down", null);
    this.dissolve("the coordinator is shutting down");
    for (const waiter of this.waiters) {
      clearTimeout(waiter.timer);
      waiter.reject(error);
    }
    this.waiters.clear();
    this.gate.closeAll(CLOSE_CODES.SHUTDOWN, "the coordinator is shutting down");
    const http = this.http;
    if (http) {
      // Peers get the close grace to answer; then whatever is left (a half-done HTTP handshake) is cut.
      const cut = setTimeout(() => http.closeAllConnections(), 2500);
      await new Promise<void>((resolve) => http.close(() => resolve()));
      clearTimeout(cut);
    }
    this.server.close();
    this.watchers.close();
    this.log("coordinator closed");
  }
}

function shutdownError(): ControlPlaneError {
  return new ControlPlaneError({ code: "SHUTDOWN", message: "the coordinator is shutting down" });
}
