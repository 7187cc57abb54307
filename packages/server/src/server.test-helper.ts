// What the server's tests share: a tiny random model, a server on any free port over a fake
// group, its log lines, JSON requests, and waiting for a state (never for a time).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openModelDir, type ModelDir } from "@apb/runtime";
import { writeTinyModel } from "@apb/runtime/testing";
import { pino } from "pino";
import { FakeGroup } from "./fake-group.test-helper.js";
import type { ServerOptions } from "./options.js";
import { ApbServer } from "./server.js";

export const MODEL_ID = "tiny-apb";
export const API_KEY = "sk-test-0123456789";

/** A document and its question, a blank line apart (as a stock client sends them). */
export const DOCUMENT = [
  "The tiny city of Quillon sits on a wide river between two green hills.",
  "Its bridge is old and made of grey stone, and carts cross it every morning.",
  "Ships stop there in spring to load wool, cheese and barrels of apple wine.",
  "In winter the river freezes and the children skate under the bridge.",
].join(" ");
export const QUESTION = "What is the bridge made of?";
export const PROMPT = `${DOCUMENT}\n\n${QUESTION}`;

export interface TinyModel {
  dir: ModelDir;
  remove(): void;
}

/** A tiny random model in a temporary directory. */
export async function tinyModel(): Promise<TinyModel> {
  const root = mkdtempSync(join(tmpdir(), "apb-server-test-"));
  await writeTinyModel(join(root, "tiny"), { seed: 3 });
  return { dir: await openModelDir(join(root, "tiny")), remove: () => rmSync(root, { recursive: true, force: true }) };
}

/** The ids of `text` in the model's vocabulary, no BOS. */
export function idsOf(dir: ModelDir, text: string): number[] {
  return dir.tokenizer.encode(text, { addSpecialTokens: false });
}

/** What a client sees of `ids`: their text, special tokens left out. */
export function textOf(dir: ModelDir, ids: number[]): string {
  return dir.tokenizer.decode(ids, { skipSpecialTokens: true });
}

export interface Running {
  server: ApbServer;
  group: FakeGroup;
  url: string;
  /** The server's log, one parsed JSON object a line. */
  logs: Record<string, unknown>[];
  /** POSTs `body` as JSON to `path`. */
  post(path: string, body: unknown, headers?: Record<string, string>, signal?: AbortSignal): Promise<Response>;
}

const running = new Set<ApbServer>();

/** A server on a free port over `group` (default: a formed 2-host fake answering `tokens`). */
export async function startServer(dir: ModelDir, o: Partial<ServerOptions> & { tokens?: number[] } = {}): Promise<Running> {
  const logs: Record<string, unknown>[] = [];
  const logger = pino({ level: "info" }, { write: (line: string) => logs.push(JSON.parse(line) as Record<string, unknown>) });
  const group = (o.group as FakeGroup | undefined) ?? new FakeGroup(o.tokens ?? [...idsOf(dir, " Stone, old stone."), dir.config.eosTokenIds[0]!]);
  const { tokens: _tokens, ...options } = o;
  const server = await ApbServer.start({ port: 0, drainTimeoutMs: 2000, logger, ...options, group, model: { dir, id: MODEL_ID } });
  running.add(server);
  const url = server.url;
  const post = (path: string, body: unknown, headers: Record<string, string> = {}, signal?: AbortSignal) =>
    fetch(url + path, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: typeof body === "string" ? body : JSON.stringify(body), ...(signal ? { signal } : {}) });
  return { server, group, url, logs, post };
}

/** Closes every server the file started (their leftover jobs are cancelled after the drain timeout). */
export async function closeServers(): Promise<void> {
  await Promise.all([...running].map((s) => s.close()));
  running.clear();
}

/** Waits until `ready()` holds, checking every few milliseconds; fails naming `what` after `ms`. */
export async function until(what: string, ready: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await ready())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** A chat request for the tiny model: the document and the question in one user message. */
export function chatBody(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { model: MODEL_ID, messages: [{ role: "user", content: PROMPT }], max_tokens: 16, ...extra };
}

/** A completion request for the tiny model. */
export function completionBody(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { model: MODEL_ID, prompt: PROMPT, max_tokens: 16, ...extra };
}

/** The error envelope of a response. */
export interface ErrorEnvelope {
  error: { code: string; message: string; path: string; type: string; param: string | null };
}

/** The SSE `data:` payloads of a streamed body, in order (`[DONE]` as the string). */
export function sseData(body: string): string[] {
  return body
    .split("\n\n")
    .filter((event) => event.startsWith("data: "))
    .map((event) => event.slice("data: ".length));
}
