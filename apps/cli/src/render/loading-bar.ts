// The weights' progress on a terminal (a large model takes a while to load); nothing
// elsewhere, so logs stay clean.
import { SingleBar } from "cli-progress";

export function loadingBar(stream: NodeJS.WriteStream = process.stderr): ((done: number, total: number) => void) | undefined {
  if (!stream.isTTY) return undefined;
  const bar = new SingleBar({ format: "loading weights [{bar}] {value}/{total}", stream });
  let state: "idle" | "running" | "stopped" = "idle";
  return (done, total) => {
    // A step can arrive after the last one (the engine's queue drains late); a bar updated
    // after stop() redraws on a timer that keeps the process alive, so late steps are dropped.
    if (state === "stopped") return;
    if (state === "idle") bar.start(total, done);
    // Each call says its total: the last one (all steps done) sets what the bar ends on.
    bar.setTotal(total);
    bar.update(done);
    state = "running";
    if (done === total) {
      bar.stop();
      state = "stopped";
    }
  };
}
