import { closeCodeFor, encodeFrame, type ErrorData, type Message, type Unversioned } from "@apb/protocol";
import type { WebSocket } from "ws";

/** A peer that does not finish the close handshake in this long is cut off, so it cannot hold a socket open. */
const CLOSE_GRACE_MS = 2000;

let nextPeerId = 1;

/** One WebSocket connection as the coordinator sees it, before and after it says who it is. */
export class Peer {
  readonly id = nextPeerId++;
  role: "peer" | "host" | "caller" = "peer";
  /** Set once the coordinator refused the peer: later frames are dropped, the close logs nothing more. */
  refusal: ErrorData | null = null;
  closing = false;
  lastSeenAt = Date.now();

  constructor(
    readonly socket: WebSocket,
    readonly remote: string,
  ) {}

  get open(): boolean {
    return this.socket.readyState === this.socket.OPEN && !this.closing;
  }

  get label(): string {
    return `connection ${this.id} from ${this.remote}`;
  }

  send(message: Unversioned<Message>): void {
    this.sendFrame(encodeFrame(message));
  }

  /** For a frame encoded once and sent to many (a job's token ids). */
  sendFrame(frame: string): void {
    if (this.open) this.socket.send(frame);
  }

  /** Says why in an `error` frame, then closes with the code that goes with it. */
  refuse(error: ErrorData, closeCode = closeCodeFor(error.code)): void {
    if (this.refusal) return;
    this.refusal = error;
    this.send({ type: "error", error });
    this.close(closeCode, `${error.code}: ${error.message}`);
  }

  close(code: number, reason: string): void {
    if (this.closing) return;
    this.closing = true;
    if (this.socket.readyState === this.socket.CLOSED) return;
    this.socket.close(code, truncateReason(reason));
    setTimeout(() => this.socket.terminate(), CLOSE_GRACE_MS).unref();
  }
}

/** A close frame's reason is at most 123 bytes of UTF-8 (RFC 6455 5.5). */
function truncateReason(reason: string): string {
  let out = reason;
  while (Buffer.byteLength(out) > 123) out = out.slice(0, -1);
  return out;
}
