// Stopping a command's work from outside. Ctrl-C: the first SIGINT aborts its AbortSignal, so
// the engine stops at its next layer and the command can release the model and say so in
// one line; a second SIGINT exits at once (work that does not heed the signal cannot hold
// the terminal). The reader of stdout going away (apb run ... | head) stops it the same way,
// quietly: nobody is left to read the rest.
import { Interrupted, ReaderGone, SIGINT_EXIT } from "./report.js";

export interface CtrlC {
  readonly signal: AbortSignal;
  /** Whether Ctrl-C was pressed. */
  readonly pressed: boolean;
  /** The error to report for work that ended because it was stopped; `error` otherwise. */
  explain(error: unknown): unknown;
  release(): void;
}

/** Work under way that stops when stdout's reader goes away. */
const readers = new Set<() => void>();

/** stdout's reader went away: stop the work under way, or end now if there is none. */
export function stdoutGone(): void {
  if (readers.size === 0) process.exit(0);
  for (const stop of readers) stop();
}

export function onCtrlC(what: string): CtrlC {
  const controller = new AbortController();
  let pressed = false;
  let readerGone = false;
  const handler = () => {
    if (pressed) {
      process.stderr.write(`apb: ${what} stopped by a second Ctrl-C (SIGINT) [CANCELLED]\n`);
      process.exit(SIGINT_EXIT);
    }
    pressed = true;
    controller.abort(new Interrupted(what));
  };
  const onReaderGone = () => {
    readerGone = true;
    controller.abort(new ReaderGone());
  };
  process.on("SIGINT", handler);
  readers.add(onReaderGone);
  return {
    signal: controller.signal,
    get pressed() {
      return pressed;
    },
    explain: (error) => (pressed ? new Interrupted(what) : readerGone ? new ReaderGone() : error),
    release: () => {
      process.removeListener("SIGINT", handler);
      readers.delete(onReaderGone);
    },
  };
}

/** Runs `work` with Ctrl-C aborting its signal; ended by Ctrl-C, it reports Interrupted. */
export async function withCtrlC<T>(what: string, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ctrlC = onCtrlC(what);
  try {
    return await work(ctrlC.signal);
  } catch (e) {
    throw ctrlC.explain(e);
  } finally {
    ctrlC.release();
  }
}
