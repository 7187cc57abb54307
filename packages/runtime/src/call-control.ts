// One native call (a load or a generation) under its caller's control: an AbortSignal and
// callbacks that may throw. Both end the native work through one CancelToken (within one
// layer, or one tensor while loading); the call then rejects with CANCELLED for the signal,
// or with exactly what a callback threw, once: a callback's throw never escapes as an
// uncaught exception from the addon's queue.
import { CancelToken } from "@apb/native";
import { RuntimeError } from "./errors.js";
import { native } from "./native-errors.js";

function reasonOf(signal: AbortSignal): string {
  const r: unknown = signal.reason;
  return r instanceof Error ? r.message : r === undefined ? "aborted" : String(r);
}

export class CallControl {
  readonly token = new CancelToken();
  private thrown: { error: unknown } | null = null;
  private readonly onAbort = () => this.token.cancel();

  /** Throws CANCELLED at once if `signal` is already aborted: no work starts. */
  constructor(
    private readonly what: "generate" | "load",
    private readonly signal: AbortSignal | undefined,
  ) {
    this.throwIfAborted();
  }

  /** CANCELLED if the signal was aborted (for the steps before and between native calls). */
  throwIfAborted(): void {
    if (this.signal?.aborted) {
      throw new RuntimeError({ code: "CANCELLED", path: "signal", message: `${this.what} was cancelled: ${reasonOf(this.signal)}` });
    }
  }

  /** `fn`, guarded: its first throw is kept and cancels the native work; later calls are dropped. */
  guard<A extends unknown[]>(fn: (...args: A) => void): (...args: A) => void {
    return (...args: A) => {
      if (this.thrown) return;
      try {
        fn(...args);
      } catch (error) {
        this.thrown = { error };
        this.token.cancel();
      }
    };
  }

  /** Rethrows what a guarded callback threw, if one did. */
  throwIfCallbackFailed(): void {
    if (this.thrown) throw this.thrown.error;
  }

  /**
   * Runs the native call. A callback's error wins over the CANCELLED it caused; the signal's
   * CANCELLED says why it was aborted. `discard` frees a result that arrived although a
   * callback had already failed (a load whose last progress call threw).
   */
  async run<T>(call: (token: CancelToken) => Promise<T>, discard?: (result: T) => void): Promise<T> {
    // Listened to only while the native call runs, so a long-lived signal keeps no listener
    // of a call that ended (or never reached the addon).
    this.signal?.addEventListener("abort", this.onAbort, { once: true });
    if (this.signal?.aborted) this.token.cancel();
    try {
      const result = await native(() => call(this.token));
      if (this.thrown) {
        discard?.(result);
        throw this.thrown.error;
      }
      return result;
    } catch (e) {
      if (this.thrown) throw this.thrown.error;
      if (e instanceof RuntimeError && e.code === "CANCELLED") this.throwIfAborted();
      throw e;
    } finally {
      this.signal?.removeEventListener("abort", this.onAbort);
    }
  }
}
