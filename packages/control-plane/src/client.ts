import {
  CLOSE_CODES,
  encodeFrame,
  errorCodeForClose,
  MAX_FRAME_BYTES,
  parseFrame,
  parseJob,
  type ErrorData,
  type FromCoordinator,
  type JobResult,
  type JobSpec,
  type Message,
  type StatusSnapshot,
  type Unversioned,
} from "@apb/protocol";
import { WebSocket } from "ws";
import { seconds } from "./describe.js";
import { ControlPlaneError } from "./errors.js";
import type { SubmitOptions } from "./jobs.js";
import { checkUrl } from "./url.js";

export interface ConnectOptions {
  /** How long connecting and the coordinator's first answer may take (default 10 s). */
  timeoutMs?: number;
}

interface Pending {
  io: SubmitOptions;
  resolve(result: JobResult): void;
  reject(error: ControlPlaneError): void;
  release(): void;
}

/**
 * A caller on another process or machine: submit() has Coordinator.submit's semantics (queueing,
 * tokens in order, CANCELLED on abort, the coordinator's errors as they are); closing the
 * connection cancels its jobs.
 */
export class CoordinatorClient {
  private readonly pending = new Map<string, Pending>();
  private readonly statusWaiters: { resolve(status: StatusSnapshot): void; reject(error: ControlPlaneError): void }[] = [];
  private nextRequest = 0;
  private lostWith: ControlPlaneError | null = null;
  private refusal: ErrorData | null = null;
  private closedByUs = false;
  private readonly closed: Promise<void>;

  /** Connects, says hello and waits for the coordinator's first status, so a wrong token fails here. */
  static connect(url: string, token: string, options: ConnectOptions = {}): Promise<CoordinatorClient> {
    const timeoutMs = options.timeoutMs ?? 10_000;
    try {
      checkUrl(url);
    } catch (e) {
      return Promise.reject(e);
    }
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { maxPayload: MAX_FRAME_BYTES, perMessageDeflate: false, handshakeTimeout: timeoutMs });
      const client = new CoordinatorClient(ws, url);
      const timer = setTimeout(() => {
        ws.terminate();
        reject(new ControlPlaneError({ code: "CONNECT", message: `the coordinator at ${url} did not answer within ${seconds(timeoutMs)}` }));
      }, timeoutMs);
      ws.once("open", () => {
        client.send({ type: "hello", token, role: "caller" });
        client.status().then(
          () => {
            clearTimeout(timer);
            resolve(client);
          },
          (error: ControlPlaneError) => {
            clearTimeout(timer);
            reject(error);
          },
        );
      });
      ws.once("error", (error) => {
        if (ws.readyState !== WebSocket.OPEN) {
          clearTimeout(timer);
          reject(new ControlPlaneError({ code: "CONNECT", message: `cannot reach the coordinator at ${url}: ${error.message}` }));
        }
      });
    });
  }

  private constructor(
    private readonly ws: WebSocket,
    private readonly url: string,
  ) {
    ws.on("message", (data) => {
      const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
      const parsed = parseFrame(bytes, "coordinator");
      if (parsed.ok) this.onMessage(parsed.message);
      else ws.close(CLOSE_CODES.BAD_FRAME, parsed.error.code);
    });
    ws.on("error", () => {}); // the close that follows says what happened
    this.closed = new Promise((resolve) => ws.once("close", (code, reason) => {
      this.onClose(code, reason.toString());
      resolve();
    }));
  }

  submit(job: JobSpec, io: SubmitOptions = {}): Promise<JobResult> {
    if (this.lostWith) return Promise.reject(this.lostWith);
    const checked = parseJob(job);
    if (!checked.ok) return Promise.reject(new ControlPlaneError(checked.error));
    if (io.signal?.aborted) return Promise.reject(new ControlPlaneError({ code: "CANCELLED", message: "the job was cancelled before it was submitted" }));
    const requestId = `r${++this.nextRequest}`;
    return new Promise<JobResult>((resolve, reject) => {
      const onAbort = () => this.send({ type: "cancel", requestId });
      io.signal?.addEventListener("abort", onAbort, { once: true });
      this.pending.set(requestId, { io, resolve, reject, release: () => io.signal?.removeEventListener("abort", onAbort) });
      this.send({ type: "submit", requestId, job: checked.message, groupTimeoutMs: io.groupTimeoutMs });
    });
  }

  /** The coordinator's status snapshot. */
  status(): Promise<StatusSnapshot> {
    if (this.lostWith) return Promise.reject(this.lostWith);
    return new Promise((resolve, reject) => {
      this.statusWaiters.push({ resolve, reject });
      this.send({ type: "status" });
    });
  }

  /** Closes the connection; the coordinator cancels this client's jobs. */
  async close(): Promise<void> {
    this.closedByUs = true;
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(CLOSE_CODES.NORMAL, "the caller closed");
    await this.closed;
  }

  private send(message: Unversioned<Message>): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(encodeFrame(message));
  }

  private settle(requestId: string): Pending | null {
    const pending = this.pending.get(requestId);
    if (!pending) return null;
    this.pending.delete(requestId);
    pending.release();
    return pending;
  }

  private onMessage(m: FromCoordinator): void {
    switch (m.type) {
      case "token":
        this.pending.get(m.requestId)?.io.onToken?.(m.tokenId);
        return;
      case "progress":
        this.pending.get(m.requestId)?.io.onProgress?.({ rank: m.rank, phase: m.phase, done: m.done, total: m.total });
        return;
      case "done":
        this.settle(m.requestId)?.resolve(m.result);
        return;
      case "failed":
        this.settle(m.requestId)?.reject(new ControlPlaneError(m.error));
        return;
      case "status":
        this.statusWaiters.shift()?.resolve(m.status);
        return;
      case "error":
        this.refusal = m.error;
        return;
      default:
        return; // accepted, and messages for hosts
    }
  }

  private onClose(code: number, reason: string): void {
    const fromClose = errorCodeForClose(code);
    const data = this.refusal ?? (this.closedByUs ? { code: "CANCELLED", message: "the client was closed", path: "" } : null) ?? {
      code: fromClose ?? "CONNECT",
      message: `lost the coordinator at ${this.url} (close ${code}${reason ? `: ${reason}` : ""})`,
      path: "",
    };
    this.lostWith = new ControlPlaneError(data);
    for (const requestId of [...this.pending.keys()]) this.settle(requestId)?.reject(this.lostWith);
    for (const waiter of this.statusWaiters.splice(0)) waiter.reject(this.lostWith);
  }
}
