// The bounded queue: one job runs on the group at a time, at most `maxQueue` wait behind it,
// and a request beyond that is refused at once with 429 and a Retry-After that estimates when
// a place frees up (the queue ahead times the recent mean job time).
import { ServerError } from "./errors.js";

/** How much the mean job time follows the latest job (an exponential moving average). */
const SMOOTHING = 0.2;

export class Admission {
  private inFlight = 0;
  private meanJobMs: number | null = null;

  constructor(private readonly maxQueue: number) {}

  /** Requests holding a place: the running one and those waiting. */
  get holding(): number {
    return this.inFlight;
  }

  /** Requests waiting behind the running one. */
  get waiting(): number {
    return Math.max(0, this.inFlight - 1);
  }

  /** Takes a place or throws BUSY (429) with the seconds to wait; `release` gives it back once. */
  enter(): { release(jobMs: number | null): void } {
    if (this.inFlight >= 1 + this.maxQueue) {
      const retryAfterS = this.retryAfterS();
      throw Object.assign(
        new ServerError({ code: "BUSY", message: `the queue is full (${this.maxQueue} requests waiting behind the running one); retry in about ${retryAfterS} s` }),
        { retryAfterS },
      );
    }
    this.inFlight += 1;
    let released = false;
    return {
      release: (jobMs) => {
        if (released) return;
        released = true;
        this.inFlight -= 1;
        if (jobMs !== null) this.meanJobMs = this.meanJobMs === null ? jobMs : this.meanJobMs + SMOOTHING * (jobMs - this.meanJobMs);
      },
    };
  }

  /** Seconds until the queue has likely moved by one place (at least 1). */
  retryAfterS(): number {
    const per = this.meanJobMs ?? 1000;
    return Math.max(1, Math.min(3600, Math.ceil(per / 1000)));
  }
}
