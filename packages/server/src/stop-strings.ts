// OpenAI's `stop`: the answer ends before the first stop string, which is not returned. Text
// that could be the start of a stop string is held back until the next piece shows whether it
// is, so a streamed answer never shows part of one.

export class StopStrings {
  private pending = "";
  private stopped = false;

  constructor(private readonly stops: readonly string[]) {}

  /** Whether a stop string has been met (the answer is complete). */
  get done(): boolean {
    return this.stopped;
  }

  /** The next piece of generated text; returns what may be shown now. */
  push(piece: string): string {
    if (this.stopped) return "";
    this.pending += piece;
    const cut = this.firstMatch();
    const partial = this.firstPartial();
    // A match is final unless a stop string that starts earlier may still complete.
    if (cut >= 0 && (partial < 0 || partial >= cut)) return this.stopAt(cut);
    const keep = partial >= 0 ? partial : this.pending.length;
    const shown = this.pending.slice(0, keep);
    this.pending = this.pending.slice(keep);
    return shown;
  }

  /** Generation ended: text up to a stop string met meanwhile, or all that was held back. */
  flush(): string {
    if (this.stopped) return "";
    const cut = this.firstMatch();
    if (cut >= 0) return this.stopAt(cut);
    const rest = this.pending;
    this.pending = "";
    return rest;
  }

  private stopAt(cut: number): string {
    this.stopped = true;
    const shown = this.pending.slice(0, cut);
    this.pending = "";
    return shown;
  }

  /** Where the earliest complete stop string starts in the pending text, or -1. */
  private firstMatch(): number {
    let cut = -1;
    for (const s of this.stops) {
      const at = this.pending.indexOf(s);
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    return cut;
  }

  /** Where the earliest end of the pending text that begins a stop string (but is not all of it) starts, or -1. */
  private firstPartial(): number {
    let first = -1;
    for (const s of this.stops) {
      for (let n = Math.min(s.length - 1, this.pending.length); n > 0; n--) {
        const at = this.pending.length - n;
        if ((first < 0 || at < first) && this.pending.endsWith(s.slice(0, n))) first = at;
      }
    }
    return first;
  }
}
