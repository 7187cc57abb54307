import type { IncomingMessage } from "node:http";
import { MAX_FRAME_BYTES, parseFrame, type CallerHello, type ErrorData, type FromCaller, type FromHost, type HostHello } from "@apb/protocol";
import type { RawData, WebSocket } from "ws";
import { seconds } from "./describe.js";
import { Peer } from "./peer.js";
import { tokensMatch } from "./secret.js";

/** What the coordinator does with connections the gate has let through. */
export interface GateEvents {
  admitHost(peer: Peer, hello: HostHello): void;
  admitCaller(peer: Peer): void;
  fromHost(peer: Peer, message: FromHost | CallerHello): void;
  fromCaller(peer: Peer, message: FromCaller | HostHello): void;
  /** After a refusal's line is logged (so an admitted host can be dropped at once). */
  refused(peer: Peer, error: ErrorData): void;
  closed(peer: Peer, code: number): void;
  /** How log lines name the peer ("host 2 (pid 7 on node-c)" once admitted). */
  describe(peer: Peer): string;
}

/**
 * Every connection's first concern: hello within the time allowed, with the token, then only
 * frames that parse and that its role may send. Anything else is refused with its close code and
 * one log line, and the connection's frames stop counting; everyone else is served on.
 */
export class Gate {
  readonly peers = new Set<Peer>();
  private readonly helloTimers = new Map<Peer, NodeJS.Timeout>();
  private closing = false;

  constructor(
    private readonly settings: { token: string; helloTimeoutMs: number; log: (line: string) => void },
    private readonly events: GateEvents,
  ) {}

  accept(socket: WebSocket, req: IncomingMessage, refuseAll: { code: number; reason: string } | null): void {
    const peer = new Peer(socket, `${req.socket.remoteAddress ?? "?"}:${req.socket.remotePort ?? "?"}`);
    if (refuseAll) return peer.close(refuseAll.code, refuseAll.reason);
    this.peers.add(peer);
    const { helloTimeoutMs } = this.settings;
    this.helloTimers.set(peer, setTimeout(() => this.refuse(peer, { code: "HELLO_TIMEOUT", message: `no hello within ${seconds(helloTimeoutMs)} of connecting`, path: "" }), helloTimeoutMs));
    socket.on("message", (data) => this.onFrame(peer, data));
    socket.on("error", (error: Error & { code?: string }) => {
      // ws closes the socket itself after a protocol error (1009 for an oversized frame); say why once.
      if (peer.refusal) return;
      const tooBig = error.code === "WS_ERR_UNSUPPORTED_MESSAGE_LENGTH";
      peer.refusal = { code: tooBig ? "FRAME_TOO_LARGE" : "BAD_FRAME", message: tooBig ? `a frame is over the limit of ${MAX_FRAME_BYTES} bytes` : error.message, path: "" };
      this.settings.log(`refused ${this.events.describe(peer)}: ${peer.refusal.code}: ${peer.refusal.message}`);
      this.events.refused(peer, peer.refusal);
    });
    socket.on("close", (code) => {
      clearTimeout(this.helloTimers.get(peer));
      this.helloTimers.delete(peer);
      this.peers.delete(peer);
      if (!this.closing) this.events.closed(peer, code);
    });
  }

  refuse(peer: Peer, error: ErrorData): void {
    if (peer.refusal) return;
    this.settings.log(`refused ${this.events.describe(peer)}: ${error.code}: ${error.message}`);
    peer.refuse(error);
    this.events.refused(peer, error);
  }

  /** Closes every connection with `code`; their closes are not reported (nothing is left to fail over). */
  closeAll(code: number, reason: string): void {
    this.closing = true;
    for (const peer of this.peers) peer.close(code, reason);
  }

  private onFrame(peer: Peer, data: RawData): void {
    if (peer.refusal || peer.closing) return;
    peer.lastSeenAt = Date.now();
    const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
    if (peer.role === "host") {
      const parsed = parseFrame(bytes, "host");
      return parsed.ok ? this.events.fromHost(peer, parsed.message) : this.refuse(peer, parsed.error);
    }
    if (peer.role === "caller") {
      const parsed = parseFrame(bytes, "caller");
      return parsed.ok ? this.events.fromCaller(peer, parsed.message) : this.refuse(peer, parsed.error);
    }
    const parsed = parseFrame(bytes, "peer");
    if (!parsed.ok) return this.refuse(peer, parsed.error);
    clearTimeout(this.helloTimers.get(peer));
    this.helloTimers.delete(peer);
    const { token } = parsed.message;
    if (!tokensMatch(token ?? "", this.settings.token)) {
      const message = token === undefined ? "hello has no token: pass the coordinator's token" : "hello has the wrong token: pass the coordinator's token";
      return this.refuse(peer, { code: "UNAUTHORIZED", message, path: "token" });
    }
    peer.role = parsed.message.role;
    if (parsed.message.role === "host") this.events.admitHost(peer, parsed.message);
    else this.events.admitCaller(peer);
  }
}
