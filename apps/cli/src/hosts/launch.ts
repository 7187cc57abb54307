// `apb run --processes` and `apb serve`: a coordinator in this process and one worker process
// per host on this machine (one per GPU with CUDA), as torchrun --nproc-per-node starts them.
// Workers exit when the coordinator goes away, so none outlives the run. A server's workers
// are restarted when one dies after the group first formed (before that, a worker's exit is
// the group's failure: a model that does not load would fail again).
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { Coordinator } from "@apb/control-plane";
import type { BackendName } from "@apb/runtime";

export interface LocalGroupOptions {
  modelPath: string;
  fingerprint: string;
  hosts: number;
  backend: BackendName;
  /** How long the group may take to form (workers load the model first). */
  formTimeoutMs: number;
  /** The control plane's token (default: a random one only the workers know); a server sets
   * it so that the page's live view can watch the group. */
  token?: string;
  /** Restart a worker that dies once the group has formed (a server); says so in the log. */
  restart?: { log(line: string): void };
  /** Jobs the coordinator lets wait (a server's queue; default the coordinator's). */
  maxQueuedJobs?: number;
}

export interface LocalGroup {
  coordinator: Coordinator;
  /** Waits until every worker has joined; fails naming a worker that exited first. */
  ready(): Promise<void>;
  stop(): Promise<void>;
}

const KEPT_LOG_LINES = 20;
/** A restarted worker waits this long, doubling for each death in a row, up to MAX. */
const RESTART_DELAY_MS = 500;
const MAX_RESTART_DELAY_MS = 30_000;
/** A worker that lived this long resets the doubling. */
const STABLE_MS = 60_000;

export async function startLocalGroup(o: LocalGroupOptions): Promise<LocalGroup> {
  const token = o.token ?? randomBytes(24).toString("hex");
  const coordinator = await Coordinator.start({ host: "127.0.0.1", port: 0, hosts: o.hosts, token, model: { path: o.modelPath, fingerprint: o.fingerprint }, ...(o.maxQueuedJobs !== undefined ? { maxQueuedJobs: o.maxQueuedJobs } : {}) });
  const workers: ChildProcess[] = [];
  let exited: ((e: Error) => void) | null = null;
  const firstExit = new Promise<never>((_, reject) => (exited = reject));
  firstExit.catch(() => undefined);
  let formed = false;
  let stopped = false;
  const deathsInARow: number[] = Array.from({ length: o.hosts }, () => 0);

  const spawnWorker = (rank: number) => {
    const args = [process.argv[1]!, "worker", "--coordinator", coordinator.url, "--backend", o.backend, "--rank", String(rank), "--exit-with-coordinator"];
    if (o.backend === "cuda") args.push("--gpu", String(rank));
    const child = spawn(process.execPath, args, { env: { ...process.env, APB_TOKEN: token }, stdio: ["ignore", "ignore", "pipe"] });
    const startedAt = Date.now();
    const kept: string[] = [];
    child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
      kept.push(...chunk.split("\n").filter(Boolean));
      kept.splice(0, Math.max(0, kept.length - KEPT_LOG_LINES));
    });
    child.on("exit", (code, signal) => {
      const how = signal ?? `code ${code}`;
      if (stopped) return;
      if (!formed || !o.restart) {
        exited?.(workerExit(rank, child.pid, how, kept.at(-1) ?? "(no output)"));
        return;
      }
      deathsInARow[rank] = Date.now() - startedAt > STABLE_MS ? 1 : deathsInARow[rank]! + 1;
      const delayMs = Math.min(MAX_RESTART_DELAY_MS, RESTART_DELAY_MS * 2 ** (deathsInARow[rank]! - 1));
      o.restart.log(`worker ${rank} (pid ${child.pid}) exited with ${how}${kept.length ? ` (last words: ${kept.at(-1)})` : ""}; restarting it in ${delayMs} ms`);
      setTimeout(() => {
        if (!stopped) workers[rank] = spawnWorker(rank);
      }, delayMs).unref();
    });
    return child;
  };
  for (let rank = 0; rank < o.hosts; rank++) workers.push(spawnWorker(rank));
  coordinator.waitForGroup(2 ** 31 - 1).then(
    () => (formed = true),
    () => undefined,
  );
  return {
    coordinator,
    ready: () => Promise.race([coordinator.waitForGroup(o.formTimeoutMs), firstExit]),
    async stop() {
      if (stopped) return;
      stopped = true;
      exited = null;
      await coordinator.close();
      await Promise.all(workers.map((w) => stopWorker(w)));
    },
  };
}

/** A worker exits when its coordinator closes; one that does not is killed after 5 s. */
function stopWorker(w: ChildProcess): Promise<void> {
  if (w.exitCode !== null || w.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => w.kill("SIGKILL"), 5000);
    w.once("exit", () => {
      clearTimeout(kill);
      resolve();
    });
    w.kill("SIGTERM");
  });
}

/** A worker that exited before the group formed, with the code its last line gave (a
 * worker prints one line, "apb: ... [CODE]", when it stops on an error). */
function workerExit(rank: number, pid: number | undefined, how: string, lastLine: string): Error & { code: string } {
  const coded = /^(?:apb: )?(.*?)\s*\[([A-Z_]+)\]\s*$/.exec(lastLine);
  const error = new Error(`worker ${rank} (pid ${pid}) exited with ${how} before the group formed: ${coded ? coded[1] : lastLine}`) as Error & { code: string };
  error.code = coded ? coded[2]! : "WORKER_EXITED";
  return error;
}
