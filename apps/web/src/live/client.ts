// A WATCH client over the browser's own WebSocket: hello as a caller with the token, then
// `watch`; every frame is checked with @apb/protocol's schemas before the view sees it.
import { encodeFrame, parseFrame, PERMANENT_ERROR_CODES, type FromCoordinator } from "@apb/protocol";

export type WatchEvent =
  | { kind: "connecting"; url: string; attempt: number }
  | { kind: "open"; url: string }
  | { kind: "message"; message: FromCoordinator }
  /** The coordinator is gone or refused us; retryInMs null: no retry (a wrong token, a bad address). */
  | { kind: "down"; url: string; reason: string; retryInMs: number | null };

export interface WatchOptions {
  /** First retry delay; it doubles up to maxRetryMs (defaults 500 ms and 10 s). */
  initialRetryMs?: number;
  maxRetryMs?: number;
  /** With no frame in this long the coordinator counts as dead (it pushes status at least every few seconds; default 10 s). */
  silenceMs?: number;
}

/** Checks an address before a socket is made, so a typo is named rather than retried. */
export function checkAddress(url: string): string | null {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return `"${url}" is not an address: write ws://HOST:PORT (the coordinator's control-plane address)`;
  }
  if (parsed.protocol !== "ws:" && parsed.protocol !== "wss:") return `"${url}" must start with ws:// or wss:// (the coordinator's control-plane address)`;
  return null;
}

export class WatchClient {
  private ws: WebSocket | null = null;
  private attempt = 0;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private silenceTimer: ReturnType<typeof setTimeout> | null = null;
  private stopped = false;
  /** Why the current socket ended, when this side knows better than the close code. */
  private why: { reason: string; permanent: boolean } | null = null;

  constructor(
    readonly url: string,
    private readonly token: string,
    private readonly onEvent: (event: WatchEvent) => void,
    private readonly options: WatchOptions = {},
  ) {}

  start(): void {
    const bad = checkAddress(this.url);
    if (bad) return this.onEvent({ kind: "down", url: this.url, reason: bad, retryInMs: null });
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.silenceTimer) clearTimeout(this.silenceTimer);
    const ws = this.ws;
    this.ws = null;
    if (ws && (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING)) ws.close(1000, "the watcher closed");
  }

  private connect(): void {
    if (this.stopped) return;
    this.attempt++;
    this.why = null;
    this.onEvent({ kind: "connecting", url: this.url, attempt: this.attempt });
    let ws: WebSocket;
    try {
      ws = new WebSocket(this.url);
    } catch (e) {
      return this.onEvent({ kind: "down", url: this.url, reason: e instanceof Error ? e.message : String(e), retryInMs: null });
    }
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      ws.send(encodeFrame({ type: "hello", token: this.token, role: "caller" }));
      ws.send(encodeFrame({ type: "watch" }));
      this.onEvent({ kind: "open", url: this.url });
      this.armSilence(ws);
    };
    ws.onmessage = (event: MessageEvent) => {
      if (this.ws !== ws) return;
      this.armSilence(ws);
      const parsed = parseFrame(typeof event.data === "string" ? event.data : "", "coordinator");
      if (!parsed.ok) {
        this.why = { reason: `the coordinator sent a frame this page cannot read (${parsed.error.code} at ${parsed.error.path || "the frame"}: ${parsed.error.message})`, permanent: false };
        ws.close(4000, "bad frame");
        return;
      }
      const message = parsed.message;
      if (message.type === "error") {
        const permanent = (PERMANENT_ERROR_CODES as readonly string[]).includes(message.error.code);
        this.why = { reason: `the coordinator refused this page: ${message.error.code}: ${message.error.message}`, permanent };
        return;
      }
      this.attempt = 0; // answered: the next loss starts the backoff afresh
      this.onEvent({ kind: "message", message });
    };
    ws.onclose = (event: CloseEvent) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.silenceTimer) clearTimeout(this.silenceTimer);
      if (this.stopped) return;
      const reason =
        this.why?.reason ??
        (opened
          ? `lost the coordinator at ${this.url} (close ${event.code}${event.reason ? `: ${event.reason}` : ""})`
          : `cannot reach the coordinator at ${this.url}: nothing answered there (is \`apb coordinator\` or \`apb serve --workers remote\` running, and is this its control-plane address?)`);
      if (this.why?.permanent) return this.onEvent({ kind: "down", url: this.url, reason, retryInMs: null });
      const initial = this.options.initialRetryMs ?? 500;
      const retryInMs = Math.min(this.options.maxRetryMs ?? 10_000, initial * 2 ** Math.max(0, this.attempt - 1));
      this.onEvent({ kind: "down", url: this.url, reason, retryInMs });
      this.retryTimer = setTimeout(() => this.connect(), retryInMs);
    };
  }

  private armSilence(ws: WebSocket): void {
    if (this.silenceTimer) clearTimeout(this.silenceTimer);
    const ms = this.options.silenceMs ?? 10_000;
    this.silenceTimer = setTimeout(() => {
      if (this.ws !== ws) return;
      this.why = { reason: `the coordinator at ${this.url} stopped answering (nothing for ${Math.round(ms / 1000)} s)`, permanent: false };
      ws.close(4001, "silent");
    }, ms);
  }
}
