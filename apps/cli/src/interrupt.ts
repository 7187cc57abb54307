// Ctrl-C while a command works: the first SIGINT aborts its AbortSignal, so the engine stops
// at its next layer and the command can release the model and say so in one line; a second
// SIGINT exits at once (work that does not heed the signal cannot hold the terminal).
import { Interrupted, SIGINT_EXIT } from "./report.js";

export interface CtrlC {
  readonly signal: AbortSignal;
  /** Whether Ctrl-C was pressed. */
  readonly pressed: boolean;
  /** The error to report for work that ended because of it; `error` otherwise. */
  explain(error: unknown): unknown;
  release(): void;
}

export function onCtrlC(what: string): CtrlC {
  const controller = new AbortController();
  let pressed = false;
  const handler = () => {
    if (pressed) {
      process.stderr.write(`apb: ${what} stopped by a second Ctrl-C (SIGINT) [CANCELLED]\n`);
      process.exit(SIGINT_EXIT);
    }
    pressed = true;
    controller.abort(new Interrupted(what));
  };
  process.on("SIGINT", handler);
  return {
    signal: controller.signal,
    get pressed() {
      return pressed;
    },
    explain: (error) => (pressed ? new Interrupted(what) : error),
    release: () => void process.removeListener("SIGINT", handler),
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
