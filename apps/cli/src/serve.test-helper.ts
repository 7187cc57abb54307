// `apb serve` as the end-to-end tests run it: the built CLI as a real process on port 0, its
// URL read from its log, /health polled until the group is ready, SIGTERM to stop it. Every
// process started here is killed by killServeLeftovers() (call it in afterAll).
import { spawn, type ChildProcess } from "node:child_process";
import OpenAI from "openai";
import { apb, BIN } from "./cli.test-helper.js";

export interface HealthHost {
  rank: number | null;
  state: string;
  pid: number;
  gpu: string | null;
}

export interface Health {
  httpStatus: number;
  status: string;
  message: string;
  hosts: { expected: number; up: number; missing: number[]; list: HealthHost[] };
  queue: { running: number; waiting: number };
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

const children = new Set<ChildProcess>();
/** Worker pids seen in /health: a server killed with SIGKILL leaves its workers behind. */
const workerPids = new Set<number>();

/** Polls `check` (every `everyMs`) until it returns something other than undefined; fails
 * after `deadlineMs`, saying what it waited for and what it saw last. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined> | T | undefined, deadlineMs = 120_000, everyMs = 50): Promise<T> {
  const until = Date.now() + deadlineMs;
  let last: unknown = null;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (e) {
      last = e;
    }
    if (Date.now() > until) throw new Error(`gave up after ${deadlineMs} ms waiting for ${what}${last ? ` (last error: ${String(last)})` : ""}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** A process that logs and exits; `log` is its stderr so far. */
export interface Proc {
  child: ChildProcess;
  log(): string;
  exited: Promise<Exit>;
}

export function spawnApb(args: string[], env: Record<string, string> = {}): Proc {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, LOG_LEVEL: "info", ...env } });
  children.add(child);
  let err = "";
  child.stdout!.resume();
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (err += d));
  const exited = new Promise<Exit>((resolve) => child.on("close", (code, signal) => resolve({ code, signal })));
  return { child, log: () => err, exited };
}

/** The pino log lines (JSON) a process has written so far; other lines are skipped. */
export function logLines(text: string): Record<string, unknown>[] {
  const lines: Record<string, unknown>[] = [];
  for (const line of text.split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      lines.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // a line still being written
    }
  }
  return lines;
}

export class Serve implements Proc {
  readonly child: ChildProcess;
  readonly exited: Promise<Exit>;
  readonly log: () => string;
  readonly openai: OpenAI;

  private constructor(
    proc: Proc,
    readonly url: string,
    readonly modelId: string,
  ) {
    this.child = proc.child;
    this.exited = proc.exited;
    this.log = proc.log;
    // No retries: the tests look at every 429 and 503 themselves.
    this.openai = new OpenAI({ baseURL: `${url}/v1`, apiKey: "unused", maxRetries: 0, timeout: 600_000 });
  }

  /** Starts `apb serve --port 0 ARGS` and waits for its URL (not for the group). */
  static async start(args: string[], o: { modelId: string; env?: Record<string, string> }): Promise<Serve> {
    const proc = spawnApb(["serve", "--port", "0", ...args], o.env);
    let exit: Exit | null = null;
    void proc.exited.then((e) => (exit = e));
    const url = await waitFor("apb serve to log its URL", () => {
      if (exit) throw new Error(`apb serve exited (${JSON.stringify(exit)}) before it listened:\n${proc.log()}`);
      const line = logLines(proc.log()).find((l) => typeof l.msg === "string" && l.msg.startsWith("apb serve listening") && typeof l.url === "string");
      return line?.url as string | undefined;
    });
    return new Serve(proc, url, o.modelId);
  }

  /** The first log message matching `pattern`, once it is there. */
  logged(pattern: RegExp): Promise<string> {
    return waitFor(`a log line matching ${pattern}`, () => logLines(this.log()).map((l) => String(l.msg)).find((m) => pattern.test(m)));
  }

  async health(): Promise<Health> {
    const r = await fetch(`${this.url}/health`);
    const body = (await r.json()) as Omit<Health, "httpStatus">;
    for (const h of body.hosts.list) workerPids.add(h.pid);
    return { httpStatus: r.status, ...body };
  }

  /** Waits until /health says ready (200): the group has formed. */
  ready(deadlineMs = 180_000): Promise<Health> {
    return waitFor("/health to say ready", async () => {
      const h = await this.health();
      return h.httpStatus === 200 && h.status === "ready" ? h : undefined;
    }, deadlineMs);
  }

  /** The pid of the worker with this rank, from /health. */
  async pidOf(rank: number): Promise<number> {
    const host = (await this.health()).hosts.list.find((h) => h.rank === rank);
    if (!host) throw new Error(`no host of rank ${rank} in /health`);
    return host.pid;
  }

  /** SIGTERM, then its exit. */
  stop(): Promise<Exit> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGTERM");
    return this.exited;
  }
}

/** Whether a process with this pid is still there. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Kills every process these tests started and every worker /health showed. */
export function killServeLeftovers(): void {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  children.clear();
  for (const pid of workerPids) if (alive(pid)) process.kill(pid, "SIGKILL");
  workerPids.clear();
}

/** The answer `apb run` gives on the same hosts (emulated in one process): with the chat
 * template as /v1/chat/completions does, or without as /v1/completions does. */
export function referenceAnswer(o: { model: string; promptFile: string; query: string; hosts: number; maxTokens: number; chat: boolean; strategy?: string }): string {
  const args = ["run", "--model", o.model, "--prompt-file", o.promptFile, "--query", o.query, "--hosts", String(o.hosts), "--max-tokens", String(o.maxTokens), "--json"];
  if (o.strategy) args.push("--strategy", o.strategy);
  if (!o.chat) args.push("--no-chat-template");
  const r = apb(args);
  if (r.code !== 0) throw new Error(`apb ${args.join(" ")} failed (${r.code}): ${r.err}`);
  return (JSON.parse(r.out) as { text: string }).text;
}
