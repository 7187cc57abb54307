import {
  CLOSE_CODES,
  encodeFrame,
  errorCodeForClose,
  MAX_FRAME_BYTES,
  parseFrame,
  PERMANENT_ERROR_CODES,
  type ErrorData,
  type FromCoordinator,
  type JobSpec,
  type Message,
  type Unversioned,
} from "@apb/protocol";
import { WebSocket, type RawData } from "ws";
import { Backoff, type BackoffOptions } from "./backoff.js";
import { duration, seconds } from "./describe.js";
import { ControlPlaneError, toErrorData } from "./errors.js";
import type { GroupMembership, HostExecutor } from "./executor.js";
import { checkUrl } from "./url.js";

export interface HostAgentOptions {
  /** The coordinator's "ws://host:port". */
  url: string;
  token: string;
  executor: HostExecutor;
  /** The rank this process should take if free (torchrun's RANK, Slurm's SLURM_PROCID). */
  rankHint?: number;
  logger?: (line: string) => void;
  /** Delays between reconnects: doubling from initialMs (250) to maxMs (5000), with jitter. */
  reconnect?: Partial<BackoffOptions>;
  /** Called once when the agent gives up for good: a refusal no retry fixes (UNAUTHORIZED, UNSUPPORTED_VERSION, MODEL_MISMATCH) or a model that does not load. */
  onFatal?: (error: ControlPlaneError) => void;
  /** How long opening the WebSocket may take (default 10 s). */
  connectTimeoutMs?: number;
  /**
   * Called when a connection the coordinator had welcomed drops (not after stop() or a fatal
   * refusal), before the agent reconnects; a worker that should exit with its coordinator calls
   * stop() here. Failed attempts to connect do not call it.
   */
  onDisconnect?: (info: { code: number; reason: string }) => void;
}

/** Closes with 1000, or cuts the socket if the close handshake does not finish (a coordinator that stopped reading). */
function closeSoon(ws: WebSocket, reason: string): void {
  if (ws.readyState !== WebSocket.OPEN) return ws.terminate();
  ws.close(CLOSE_CODES.NORMAL, reason);
  setTimeout(() => ws.terminate(), 2000).unref();
}

/** A coordinator silent for this many heartbeat periods is taken for gone (a half-open TCP connection never closes by itself). */
const SILENT_HEARTBEATS = 5;
/** Progress goes out at most this often per phase (the last step always), so a chatty engine cannot flood the coordinator. */
const PROGRESS_EVERY_MS = 100;

interface Session {
  ws: WebSocket;
  hostId: string | null;
  heartbeatMs: number;
  lastHeardAt: number;
  watchdog: NodeJS.Timeout | null;
  /** The coordinator's `error` frame, if it sent one before closing. */
  refusal: ErrorData | null;
  ended: boolean;
}

type TaskKind = "load" | "bootstrap" | "join" | "job" | "leave";

/**
 * One host's end of the control plane: connects to the coordinator, says hello with the
 * executor's facts, and turns the coordinator's messages into executor calls, one at a time and
 * in order (load, bootstrap, join, run, leave), while heartbeats and aborts are answered at once.
 * Reconnects with backoff when the connection drops; stops for good on a permanent refusal.
 */
export class HostAgent {
  /** Resolves when the agent has stopped: null after stop(), the error after a fatal refusal. */
  readonly finished: Promise<ControlPlaneError | null>;
  private finish!: (error: ControlPlaneError | null) => void;
  private session: Session | null = null;
  private stopped = false;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private readonly backoff: Backoff;
  /** Executor calls that change the group run one after another on this chain. */
  private work: Promise<void> = Promise.resolve();
  private inFlight: { kind: TaskKind; jobId: string | null } | null = null;
  private readonly abortedJobs = new Set<string>();
  /** The group the executor is in (or joining), so that it is left before the next one. */
  private membership: GroupMembership | null = null;
  private readonly log: (line: string) => void;

  /** Starts connecting at once; `finished` says when it has stopped. Throws INVALID_OPTIONS for a URL that is not ws:// or wss://. */
  static start(options: HostAgentOptions): HostAgent {
    checkUrl(options.url);
    return new HostAgent(options);
  }

  private constructor(private readonly options: HostAgentOptions) {
    this.log = options.logger ?? (() => {});
    this.backoff = new Backoff({ initialMs: options.reconnect?.initialMs ?? 250, maxMs: options.reconnect?.maxMs ?? 5000 });
    this.finished = new Promise((resolve) => (this.finish = resolve));
    void this.connect();
  }

  /** The id the coordinator gave this host on its current connection. */
  get hostId(): string | null {
    return this.session?.hostId ?? null;
  }

  /** This host's rank in the group it is in, or null. */
  get rank(): number | null {
    return this.membership?.rank ?? null;
  }

  get connected(): boolean {
    return this.session?.ws.readyState === WebSocket.OPEN;
  }

  /** Closes the connection for good (aborting a running job and leaving the group); resolves once stopped. */
  async stop(): Promise<void> {
    if (!this.stopped) {
      this.stopped = true;
      if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
      const session = this.session;
      if (!session || session.ended) this.drainThen(null);
      else closeSoon(session.ws, "the agent stopped");
    }
    await this.finished;
  }

  // ---------------------------------------------------------------- the connection

  private async connect(): Promise<void> {
    this.reconnectTimer = null;
    if (this.stopped) return;
    const { executor } = this.options;
    let hello: Unversioned<Message>;
    try {
      hello = { type: "hello", token: this.options.token, role: "host", rankHint: this.options.rankHint, facts: await executor.facts(), dataAddress: executor.dataAddress() };
    } catch (e) {
      this.log(`agent: the executor could not report its facts: ${toErrorData(e).message}`);
      return this.scheduleReconnect();
    }
    if (this.stopped) return this.drainThen(null);
    let ws: WebSocket;
    try {
      ws = new WebSocket(this.options.url, { maxPayload: MAX_FRAME_BYTES, perMessageDeflate: false, handshakeTimeout: this.options.connectTimeoutMs ?? 10_000 });
    } catch (e) {
      return this.fatal(new ControlPlaneError({ code: "CONNECT", message: `cannot open ${this.options.url}: ${toErrorData(e).message}`, path: "url" }));
    }
    const session: Session = { ws, hostId: null, heartbeatMs: 1000, lastHeardAt: Date.now(), watchdog: null, refusal: null, ended: false };
    this.session = session;
    let socketError = "";
    ws.on("open", () => {
      this.log(`agent: connected to ${this.options.url}`);
      ws.send(encodeFrame(hello));
    });
    ws.on("message", (data) => this.onFrame(session, data));
    ws.on("error", (error) => (socketError = error.message));
    ws.on("close", (code, reason) => this.onClose(session, code, reason.toString() || socketError));
  }

  private scheduleReconnect(): void {
    if (this.stopped) return this.drainThen(null);
    const delayMs = this.backoff.nextMs();
    this.reconnectTimer = setTimeout(() => void this.connect(), delayMs);
    this.log(`agent: reconnecting in ${seconds(delayMs)}`);
  }

  private onClose(session: Session, code: number, reason: string): void {
    session.ended = true;
    if (session.watchdog) clearInterval(session.watchdog);
    // Whatever the executor was doing was for a coordinator that is gone.
    if (this.inFlight) this.abortExecutor(`lost the coordinator (close ${code})`);
    this.leaveGroupLater();
    if (this.stopped) return this.drainThen(null);
    const codeFromClose = errorCodeForClose(code);
    const refusal = session.refusal ?? (codeFromClose ? { code: codeFromClose, message: reason || `closed with ${code}`, path: "" } : null);
    if (refusal && (PERMANENT_ERROR_CODES as readonly string[]).includes(refusal.code)) {
      return this.fatal(new ControlPlaneError({ ...refusal, message: `the coordinator refused this host: ${refusal.message}` }));
    }
    this.log(`agent: lost the coordinator (close ${code}${reason ? `: ${reason}` : ""})`);
    if (session.hostId !== null) {
      try {
        this.options.onDisconnect?.({ code, reason });
      } catch (e) {
        this.log(`agent: onDisconnect threw: ${toErrorData(e).message}`);
      }
    }
    this.scheduleReconnect();
  }

  private fatal(error: ControlPlaneError): void {
    if (this.stopped) return;
    this.stopped = true;
    this.log(`agent: giving up: ${error.code}: ${error.message}`);
    const session = this.session;
    if (session && !session.ended) closeSoon(session.ws, "the agent gave up");
    try {
      this.options.onFatal?.(error);
    } catch (e) {
      this.log(`agent: onFatal threw: ${toErrorData(e).message}`);
    }
    this.drainThen(error);
  }

  /** The executor's abort, which must not take the agent down with it if it throws. */
  private abortExecutor(reason: string): void {
    try {
      this.options.executor.abort(reason);
    } catch (e) {
      this.log(`agent: the executor's abort threw: ${toErrorData(e).message}`);
    }
  }

  /** Resolves `finished` once the executor calls already queued have ended. */
  private drainThen(error: ControlPlaneError | null): void {
    void this.work.then(() => this.finish(error));
  }

  private send(session: Session, message: Unversioned<Message>): void {
    if (!session.ended && session.ws.readyState === WebSocket.OPEN) session.ws.send(encodeFrame(message));
  }

  // ---------------------------------------------------------------- messages

  private onFrame(session: Session, data: RawData): void {
    session.lastHeardAt = Date.now();
    const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
    const parsed = parseFrame(bytes, "coordinator");
    if (!parsed.ok) {
      this.log(`agent: the coordinator sent a bad frame (${parsed.error.code}: ${parsed.error.message}); reconnecting`);
      session.ws.close(CLOSE_CODES.BAD_FRAME, parsed.error.code);
      return;
    }
    this.onMessage(session, parsed.message);
  }

  private onMessage(session: Session, m: FromCoordinator): void {
    const { executor } = this.options;
    switch (m.type) {
      case "heartbeat":
        return this.send(session, { type: "heartbeat", seq: m.seq });
      case "welcome":
        session.hostId = m.hostId;
        session.heartbeatMs = m.heartbeatMs;
        this.backoff.reset();
        this.watch(session);
        this.log(`agent: welcomed as ${m.hostId}; loading ${m.model.path}`);
        return this.task(session, "load", null, async () => {
          const startedAt = performance.now();
          try {
            const { fingerprint } = await executor.load(m.model, () => {});
            this.log(`agent: model loaded in ${duration(performance.now() - startedAt)} (${fingerprint})`);
            this.send(session, { type: "ready", fingerprint });
          } catch (e) {
            // A model that does not load will not load on the next connection either.
            const error = toErrorData(e);
            this.send(session, { type: "error", jobId: null, rank: null, error });
            this.fatal(new ControlPlaneError({ ...error, message: `the model did not load: ${error.message}` }));
          }
        });
      case "bootstrapRequest":
        return this.task(session, "bootstrap", null, async () => {
          try {
            const bootstrap = await executor.groupBootstrap(m.worldSize);
            this.send(session, { type: "bootstrap", groupId: m.groupId, bootstrap });
          } catch (e) {
            this.send(session, { type: "error", jobId: null, rank: 0, error: toErrorData(e) });
          }
        });
      case "rendezvous":
        return this.task(session, "join", null, async () => {
          const membership: GroupMembership = { groupId: m.groupId, rank: m.rank, worldSize: m.worldSize, addresses: m.addresses, bootstrap: m.bootstrap };
          this.membership = membership; // set first: a half-joined data plane must be left too
          try {
            await executor.joinGroup(membership);
            this.log(`agent: joined group ${m.groupId} as rank ${m.rank} of ${m.worldSize}`);
            this.send(session, { type: "joined", groupId: m.groupId });
          } catch (e) {
            this.send(session, { type: "error", jobId: null, rank: m.rank, error: toErrorData(e) });
          }
        });
      case "job":
        return this.task(session, "job", m.jobId, () => this.runJob(session, m.jobId, m.job));
      case "abort":
        this.log(`agent: abort${m.jobId === null ? "" : ` job ${m.jobId}`}: ${m.reason}`);
        if (m.jobId !== null) this.abortedJobs.add(m.jobId);
        if (this.abortApplies(m.jobId)) this.abortExecutor(m.reason);
        return;
      case "dissolve":
        this.log(`agent: group ${m.groupId} dissolved: ${m.reason}`);
        // A join or job still in flight is on the dissolved data plane: stop it so leaving is not stuck behind it.
        if (this.inFlight && this.inFlight.kind !== "load") this.abortExecutor(`group ${m.groupId} dissolved: ${m.reason}`);
        return this.leaveGroupLater();
      case "error":
        session.refusal = m.error;
        this.log(`agent: the coordinator says ${m.error.code}: ${m.error.message}`);
        return;
      default:
        return; // messages for callers (accepted, token, ...) are not for hosts
    }
  }

  /** An abort names a job (stop it if it is the one running) or none (stop whatever uses the data plane). */
  private abortApplies(jobId: string | null): boolean {
    const inFlight = this.inFlight;
    if (!inFlight) return false;
    if (inFlight.kind === "job") return jobId === null || inFlight.jobId === jobId;
    return jobId === null && (inFlight.kind === "join" || inFlight.kind === "bootstrap");
  }

  private async runJob(session: Session, jobId: string, job: JobSpec): Promise<void> {
    const membership = this.membership;
    if (this.abortedJobs.delete(jobId)) return; // aborted before it started: the coordinator has moved on
    if (!membership) {
      // The coordinator sends jobs only to a formed group; say so rather than leave it waiting.
      this.send(session, { type: "error", jobId, rank: null, error: { code: "INTERNAL", message: `job ${jobId} came for a group this host is not in`, path: "" } });
      return;
    }
    const { rank, worldSize } = membership;
    // Every rank generates the same tokens; only the last one's are streamed, once.
    const streams = rank === worldSize - 1;
    let lastProgress = { phase: "", at: 0 };
    const startedAt = performance.now();
    try {
      const result = await this.options.executor.run(
        { ...job, jobId },
        {
          onToken: (tokenId) => {
            if (streams) this.send(session, { type: "token", jobId, rank, tokenId });
          },
          onProgress: (phase, done, total) => {
            const now = performance.now();
            if (phase === lastProgress.phase && done < total && now - lastProgress.at < PROGRESS_EVERY_MS) return;
            lastProgress = { phase, at: now };
            this.send(session, { type: "progress", jobId, rank, phase, done, total });
          },
        },
      );
      this.send(session, { type: "result", jobId, rank, result: { ...result, rank } });
      this.log(`agent: job ${jobId} done in ${duration(performance.now() - startedAt)}`);
    } catch (e) {
      const error = toErrorData(e);
      this.send(session, { type: "error", jobId, rank, error });
      this.log(`agent: job ${jobId} failed: ${error.code}: ${error.message}`);
    } finally {
      this.abortedJobs.delete(jobId);
    }
  }

  /** Queues an executor call; calls for a connection that has since closed are skipped. */
  private task(session: Session, kind: TaskKind, jobId: string | null, fn: () => Promise<void>): void {
    this.work = this.work.then(async () => {
      if (session.ended) return;
      this.inFlight = { kind, jobId };
      try {
        await fn();
      } catch (e) {
        this.log(`agent: ${kind} failed: ${toErrorData(e).message}`);
      } finally {
        this.inFlight = null;
      }
    });
  }

  /** Leaves the executor's group, after whatever is in flight, if it is in one. */
  private leaveGroupLater(): void {
    this.work = this.work.then(async () => {
      const membership = this.membership;
      if (!membership) return;
      this.membership = null;
      this.inFlight = { kind: "leave", jobId: null };
      try {
        await this.options.executor.leaveGroup();
      } catch (e) {
        this.log(`agent: leaving group ${membership.groupId} failed: ${toErrorData(e).message}`);
      } finally {
        this.inFlight = null;
      }
    });
  }

  /** Drops a connection on which the coordinator has fallen silent, so the agent reconnects. */
  private watch(session: Session): void {
    if (session.watchdog) clearInterval(session.watchdog);
    const limitMs = SILENT_HEARTBEATS * session.heartbeatMs;
    session.watchdog = setInterval(() => {
      if (Date.now() - session.lastHeardAt <= limitMs) return;
      this.log(`agent: the coordinator has been silent for ${seconds(Date.now() - session.lastHeardAt)}; reconnecting`);
      session.ws.terminate();
    }, session.heartbeatMs);
  }
}
