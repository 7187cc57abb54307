export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
}

/**
 * Reconnect delays: doubling from initialMs up to maxMs, each drawn from its upper half, so a
 * rack of hosts that lost the coordinator together does not reconnect in lockstep.
 */
export class Backoff {
  private attempts = 0;

  constructor(
    private readonly options: BackoffOptions,
    private readonly random: () => number = Math.random,
  ) {}

  nextMs(): number {
    const ceilingMs = Math.min(this.options.maxMs, this.options.initialMs * 2 ** Math.min(this.attempts, 30));
    this.attempts++;
    return Math.round(ceilingMs / 2 + (this.random() * ceilingMs) / 2);
  }

  reset(): void {
    this.attempts = 0;
  }
}
