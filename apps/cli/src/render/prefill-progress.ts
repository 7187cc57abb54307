// Prefill's progress on a terminal: a bar per host counting the layers it has finished, so a
// long prompt shows where the time goes (and which host lags) instead of minutes of
// silence. Only on a terminal: logs and pipes get nothing, and --json never draws it.
import { MultiBar, type SingleBar } from "cli-progress";

/** One host finished one layer of prefill (`layer` counts from 1 to `layers`). */
export interface LayerDone {
  host: number;
  hosts: number;
  layer: number;
  layers: number;
}

export interface PrefillProgress {
  onLayer(p: LayerDone): void;
  /** Clears nothing: the finished bars stay above what is printed next. Safe to call twice. */
  stop(): void;
}

/** More hosts than this share one bar (a bar per host would not fit a terminal). */
export const MAX_HOST_BARS = 16;

export function prefillProgress(stream: NodeJS.WriteStream = process.stderr): PrefillProgress | null {
  if (!stream.isTTY) return null;
  const multi = new MultiBar({ stream, format: "prefill {who} [{bar}] {value}/{total} layers", hideCursor: true, autopadding: true });
  const bars = new Map<number, SingleBar>();
  let stopped = false;
  // With many hosts one bar counts layers finished across all of them.
  let together: { bar: SingleBar; done: number } | null = null;
  return {
    onLayer(p) {
      if (stopped) return;
      if (p.hosts > MAX_HOST_BARS) {
        together ??= { bar: multi.create(p.hosts * p.layers, 0, { who: `${p.hosts} hosts` }), done: 0 };
        together.bar.update(++together.done);
        return;
      }
      let bar = bars.get(p.host);
      if (!bar) {
        // Every host's bar appears with the first event, in host order, so rows do not move.
        for (let h = 0; h < p.hosts; h++) if (!bars.has(h)) bars.set(h, multi.create(p.layers, 0, { who: `host ${h}` }));
        bar = bars.get(p.host)!;
      }
      bar.update(p.layer);
    },
    stop() {
      if (stopped) return;
      stopped = true;
      multi.stop();
    },
  };
}
