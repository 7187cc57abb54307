// `apb serve` end to end, as a user runs it: the built CLI as a real process on loopback, its
// hosts as worker processes (--hosts 2), and the official OpenAI client talking to it. The
// answers must be the ones `apb run` gives; a worker killed mid-request must fail that
// request with HOST_LOST and come back; under load every request is answered or refused
// with 429, never lost; SIGTERM drains; remote `apb worker`s join with a token.
// Everything waits on state (the log, /health), never on time: CI machines are slow.
import { readFileSync } from "node:fs";
import { APIError } from "openai";
import type { ChatCompletionCreateParamsNonStreaming, CompletionCreateParamsNonStreaming } from "openai/resources";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Workspace, workspace } from "./cli.test-helper.js";
import { alive, killServeLeftovers, referenceAnswer, Serve, spawnApb, waitFor } from "./serve.test-helper.js";

const HOSTS = 2;
const QUERY = "What is the key?";
const MAX_TOKENS = 8;
/** A test with a server: start, form the group, requests, drain. */
const SERVER_TEST_MS = 300_000;

let ws: Workspace;
let doc: string;
let modelId: string;

beforeAll(async () => {
  ws = await workspace("serve");
  doc = readFileSync(ws.promptFile, "utf8");
  modelId = "tiny";
});

afterAll(() => {
  killServeLeftovers();
  ws?.remove();
});

/** The user message (or prompt) a stock client sends: the document, a blank line, the question. */
const textOf = (query: string) => `${doc}\n\n${query}`;

/** A chat request for the question, with apb's extra fields where given. */
function chat(query: string, maxTokens: number, extra: Record<string, unknown> = {}): ChatCompletionCreateParamsNonStreaming {
  return { model: modelId, messages: [{ role: "user", content: textOf(query) }], max_tokens: maxTokens, ...extra } as ChatCompletionCreateParamsNonStreaming;
}

function completion(query: string, maxTokens: number, extra: Record<string, unknown> = {}): CompletionCreateParamsNonStreaming {
  return { model: modelId, prompt: textOf(query), max_tokens: maxTokens, ...extra } as CompletionCreateParamsNonStreaming;
}

async function chatText(server: Serve, query: string, maxTokens: number): Promise<{ id: string; text: string }> {
  const r = await server.openai.chat.completions.create(chat(query, maxTokens));
  return { id: r.id, text: r.choices[0]!.message.content ?? "" };
}

async function chatStreamed(server: Serve, query: string, maxTokens: number): Promise<{ id: string; text: string; finish: string | null }> {
  const stream = await server.openai.chat.completions.create({ ...chat(query, maxTokens), stream: true });
  let text = "";
  let id = "";
  let finish: string | null = null;
  for await (const chunk of stream) {
    id = chunk.id;
    text += chunk.choices[0]?.delta.content ?? "";
    finish = chunk.choices[0]?.finish_reason ?? finish;
  }
  return { id, text, finish };
}

async function completionText(server: Serve, query: string, maxTokens: number): Promise<{ id: string; text: string }> {
  const r = await server.openai.completions.create(completion(query, maxTokens));
  return { id: r.id, text: r.choices[0]!.text };
}

async function completionStreamed(server: Serve, query: string, maxTokens: number): Promise<{ id: string; text: string; finish: string | null }> {
  const stream = await server.openai.completions.create({ ...completion(query, maxTokens), stream: true });
  let text = "";
  let id = "";
  let finish: string | null = null;
  for await (const chunk of stream) {
    id = chunk.id;
    text += chunk.choices[0]?.text ?? "";
    finish = chunk.choices[0]?.finish_reason ?? finish;
  }
  return { id, text, finish };
}

/**
 * The error of a request whose host 1 (pid `victim`) was killed: 503 HOST_LOST naming the
 * host, its rank and pid (the surviving host's COMM, which may arrive first, is not the cause).
 */
function expectLostHost(e: APIError, victim: number, o: { streamed?: boolean } = {}): void {
  if (!o.streamed) expect(e.status).toBe(503);
  expect(e.code, String(e)).toBe("HOST_LOST");
  expect(e.message).toMatch(/host 1\b/);
  expect(e.message).toContain(`pid ${victim}`);
}

/** A long job: ignore_eos and max_tokens near the model's positions (minutes on CPU), so it
 * is surely still running when the test acts on it. */
const LONG_TOKENS = 60_000;

describe("apb serve with 2 local worker processes", () => {
  let server: Serve;
  beforeAll(async () => {
    server = await Serve.start(["--model", ws.model, "--model-name", "tiny", "--hosts", String(HOSTS)], { modelId: "tiny" });
    await server.ready();
  }, SERVER_TEST_MS);
  afterAll(async () => {
    await server?.stop();
  });

  it("answers chat and completions, whole and streamed, as apb run does on the same hosts", async () => {
    const expectedChat = referenceAnswer({ model: ws.model, promptFile: ws.promptFile, query: QUERY, hosts: HOSTS, maxTokens: MAX_TOKENS, chat: true });
    const expectedText = referenceAnswer({ model: ws.model, promptFile: ws.promptFile, query: QUERY, hosts: HOSTS, maxTokens: MAX_TOKENS, chat: false });
    // Seed 2's answer to this document prints something, so equality means something.
    expect(expectedChat).not.toBe("");

    expect((await chatText(server, QUERY, MAX_TOKENS)).text).toBe(expectedChat);
    const streamedChat = await chatStreamed(server, QUERY, MAX_TOKENS);
    expect(streamedChat.text).toBe(expectedChat);
    expect(streamedChat.finish).not.toBeNull();
    expect((await completionText(server, QUERY, MAX_TOKENS)).text).toBe(expectedText);
    const streamedText = await completionStreamed(server, QUERY, MAX_TOKENS);
    expect(streamedText.text).toBe(expectedText);
    expect(streamedText.finish).not.toBeNull();

    // apb's own field chooses the layout: ring attention gives what apb run --strategy ring gives.
    const ring = referenceAnswer({ model: ws.model, promptFile: ws.promptFile, query: QUERY, hosts: HOSTS, maxTokens: MAX_TOKENS, chat: true, strategy: "ring" });
    const viaRing = await server.openai.chat.completions.create(chat(QUERY, MAX_TOKENS, { apb: { strategy: "ring" } }));
    expect(viaRing.choices[0]!.message.content).toBe(ring);
    expect((viaRing as unknown as { apb: { strategy: string } }).apb.strategy).toBe("ring");

    const models = await server.openai.models.list();
    expect(models.data.map((m) => m.id)).toEqual(["tiny"]);
  }, SERVER_TEST_MS);

  it("fails the running request with HOST_LOST naming the host when worker 1 is killed, goes unready, restarts the worker and serves again", async () => {
    const victim = await server.pidOf(1);
    const running = server.openai.chat.completions.create(chat(QUERY, LONG_TOKENS, { ignore_eos: true })).then(
      (r) => ({ ok: r }),
      (e: unknown) => ({ error: e }),
    );
    await waitFor("the request to run on the group", async () => ((await server.health()).queue.running === 1 ? true : undefined));
    process.kill(victim, "SIGKILL");

    const outcome = await running;
    expect("error" in outcome, "the request should have failed").toBe(true);
    const error = (outcome as { error: unknown }).error;
    expect(error).toBeInstanceOf(APIError);
    expectLostHost(error as APIError, victim);

    // The group has lost a host: unready (503) until the worker is back.
    const unready = await waitFor("/health to say unready, host 1 missing", async () => {
      const h = await server.health();
      return h.httpStatus === 503 && h.hosts.missing.includes(1) ? h : undefined;
    }, 60_000, 20);
    expect(unready.status).toBe("unready");
    expect(unready.hosts.missing).toContain(1);

    const back = await server.ready(240_000);
    const rank1 = back.hosts.list.find((h) => h.rank === 1)!;
    expect(rank1.pid).not.toBe(victim);
    expect(alive(victim)).toBe(false);
    expect(server.log()).toMatch(new RegExp(`worker 1 \\(pid ${victim}\\) exited with SIGKILL.*restarting it`));

    const expected = referenceAnswer({ model: ws.model, promptFile: ws.promptFile, query: QUERY, hosts: HOSTS, maxTokens: MAX_TOKENS, chat: true });
    expect((await chatText(server, QUERY, MAX_TOKENS)).text).toBe(expected);
  }, SERVER_TEST_MS);

  it("ends a streamed answer with an error event naming the host when worker 1 is killed mid-stream, and serves again", async () => {
    await server.ready();
    const victim = await server.pidOf(1);
    const stream = await server.openai.chat.completions.create({ ...chat(QUERY, LONG_TOKENS, { ignore_eos: true }), stream: true });
    let chunks = 0;
    let failure: unknown = null;
    try {
      for await (const _ of stream) {
        // Killed once the answer is under way (the status line and some tokens are out).
        if (++chunks === 20) process.kill(victim, "SIGKILL");
      }
    } catch (e) {
      failure = e;
    }
    expect(chunks).toBeGreaterThanOrEqual(20);
    expect(failure).toBeInstanceOf(APIError);
    // A stream's error event carries the body but no status (the status line was 200).
    expectLostHost(failure as APIError, victim, { streamed: true });

    const back = await server.ready(240_000);
    expect(back.hosts.list.find((h) => h.rank === 1)!.pid).not.toBe(victim);
    const expected = referenceAnswer({ model: ws.model, promptFile: ws.promptFile, query: QUERY, hosts: HOSTS, maxTokens: MAX_TOKENS, chat: true });
    expect((await chatStreamed(server, QUERY, MAX_TOKENS)).text).toBe(expected);
  }, SERVER_TEST_MS);
});

describe("apb serve under load (--max-queue 4)", () => {
  let server: Serve;
  beforeAll(async () => {
    server = await Serve.start(["--model", ws.model, "--model-name", "tiny", "--hosts", String(HOSTS), "--max-queue", "4"], { modelId: "tiny" });
    await server.ready();
  }, SERVER_TEST_MS);
  afterAll(async () => {
    await server?.stop();
  });

  it("answers or refuses with 429 and Retry-After each of 200 requests from 16 clients, none lost or duplicated, each with its prompt's answer", async () => {
    const tokens = 3;
    const queries = ["What is the key?", "Which word comes first?", "Say the last word.", "How many times does alpha appear?"];
    type Kind = "chat" | "text";
    const kinds: Kind[] = ["chat", "text"];
    // What each prompt gets alone: the answers under load must be the same.
    const expected = new Map<string, string>();
    for (const q of queries) {
      expected.set(`chat ${q}`, (await chatText(server, q, tokens)).text);
      expected.set(`text ${q}`, (await completionText(server, q, tokens)).text);
    }

    const REQUESTS = 200;
    const CLIENTS = 16;
    type Settled = { i: number; key: string; status: number; id?: string; text?: string; retryAfter?: string | null; error?: string };
    const settled: Settled[] = [];
    let next = 0;
    const client = async () => {
      while (next < REQUESTS) {
        const i = next++;
        const query = queries[i % queries.length]!;
        const kind = kinds[Math.floor(i / queries.length) % kinds.length]!;
        const streamed = i % 3 === 0;
        const key = `${kind} ${query}`;
        try {
          const r =
            kind === "chat"
              ? streamed
                ? await chatStreamed(server, query, tokens)
                : await chatText(server, query, tokens)
              : streamed
                ? await completionStreamed(server, query, tokens)
                : await completionText(server, query, tokens);
          settled.push({ i, key, status: 200, id: r.id, text: r.text });
        } catch (e) {
          if (e instanceof APIError && e.status !== undefined) settled.push({ i, key, status: e.status, retryAfter: e.headers?.get("retry-after") ?? null, error: `${e.code}: ${e.message}` });
          else settled.push({ i, key, status: -1, error: String(e) });
        }
      }
    };
    await Promise.all(Array.from({ length: CLIENTS }, client));

    // Every request settled exactly once.
    expect(settled.length).toBe(REQUESTS);
    expect(new Set(settled.map((s) => s.i)).size).toBe(REQUESTS);
    const others = settled.filter((s) => s.status !== 200 && s.status !== 429);
    expect(others, JSON.stringify(others.slice(0, 3))).toEqual([]);
    const ok = settled.filter((s) => s.status === 200);
    const busy = settled.filter((s) => s.status === 429);
    expect(ok.length + busy.length).toBe(REQUESTS);
    expect(ok.length).toBeGreaterThan(0);
    // 16 clients and room for 5 (one running, 4 waiting): some are refused.
    expect(busy.length).toBeGreaterThan(0);
    for (const b of busy) expect(Number(b.retryAfter)).toBeGreaterThanOrEqual(1);
    // No answer given twice; each the one its prompt gets alone.
    expect(new Set(ok.map((s) => s.id)).size).toBe(ok.length);
    for (const s of ok) expect(s.text, `request ${s.i} (${s.key})`).toBe(expected.get(s.key));

    // Nothing left behind: the queue is empty and the group ready.
    const after = await server.ready();
    expect(after.queue).toEqual({ running: 0, waiting: 0 });
  }, SERVER_TEST_MS);
});

describe("apb serve with a queue longer than the control plane's default (1024 jobs)", () => {
  it("answers every request the queue admits: --max-queue 1100 and 1101 requests at once, all 200", async () => {
    const server = await Serve.start(["--model", ws.model, "--model-name", "tiny", "--hosts", String(HOSTS), "--max-queue", "1100"], { modelId: "tiny" });
    await server.ready();
    // A short prompt and one token: the queue, not the model, is under test.
    const body = JSON.stringify({ model: "tiny", prompt: `${"Alpha beta gamma delta. ".repeat(8)}\n\nKey?`, max_tokens: 1 });
    const statuses = await Promise.all(
      Array.from({ length: 1101 }, () =>
        fetch(`${server.url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body }).then(async (r) => (r.status === 200 ? 200 : `${r.status} ${await r.text()}`)),
      ),
    );
    const refused = statuses.filter((s) => s !== 200);
    expect(refused.length, String(refused[0])).toBe(0);
    expect(await server.stop()).toEqual({ code: 0, signal: null });
  }, SERVER_TEST_MS);
});

describe("apb serve on SIGTERM", () => {
  it("finishes the running request, exits 0 and leaves no worker behind", async () => {
    // The drain may take as long as the request needs.
    const server = await Serve.start(["--model", ws.model, "--model-name", "tiny", "--hosts", String(HOSTS), "--drain-timeout-ms", "600000"], { modelId: "tiny" });
    const health = await server.ready();
    const workers = health.hosts.list.map((h) => h.pid);
    expect(workers.length).toBe(HOSTS);

    const tokens = 1000;
    const running = server.openai.chat.completions.create(chat(QUERY, tokens, { ignore_eos: true }));
    await waitFor("the request to run on the group", async () => ((await server.health()).queue.running === 1 ? true : undefined));
    server.child.kill("SIGTERM");
    await server.logged(/^SIGTERM: draining/);

    const r = await running;
    expect(r.choices[0]!.finish_reason).toBe("length");
    expect(r.usage?.completion_tokens).toBe(tokens);
    expect(await server.exited).toEqual({ code: 0, signal: null });
    expect(server.log()).toMatch(/"msg":"stopped"/);
    await waitFor("the workers to exit", () => (workers.every((pid) => !alive(pid)) ? true : undefined), 60_000);
  }, SERVER_TEST_MS);
});

describe("apb serve --workers remote", () => {
  it("serves a chat request on two apb workers that joined with the token", async () => {
    const token = "serve-test-token";
    // --listen takes port 0 (any free port) and the log says which the control plane got.
    const server = await Serve.start(["--model", ws.model, "--model-name", "tiny", "--hosts", String(HOSTS), "--workers", "remote", "--listen", "127.0.0.1:0", "--token", token], {
      modelId: "tiny",
      env: { APB_TOKEN: "" },
    });
    const listening = await server.logged(/^control plane listening on /);
    const coordinator = /on (ws:\/\/\S+?);/.exec(listening)![1]!;
    expect(coordinator).toMatch(/^ws:\/\/127\.0\.0\.1:\d+$/);
    expect(coordinator).not.toMatch(/:0$/);

    // Not ready without workers.
    const waiting = await server.health();
    expect([waiting.httpStatus, waiting.status]).toEqual([503, "unready"]);

    const workers = [0, 1].map(() => spawnApb(["worker", "--coordinator", coordinator, "--token", token, "--exit-with-coordinator"], { APB_TOKEN: "" }));
    let ready;
    try {
      ready = await server.ready();
    } catch (e) {
      throw new Error(`${String(e)}\nserver:\n${server.log()}\nworkers:\n${workers.map((w) => w.log()).join("\n")}`);
    }
    expect(ready.hosts.list.map((h) => h.rank).sort()).toEqual([0, 1]);
    expect(ready.hosts.list.map((h) => h.pid).sort()).toEqual(workers.map((w) => w.child.pid).sort());

    const expected = referenceAnswer({ model: ws.model, promptFile: ws.promptFile, query: QUERY, hosts: HOSTS, maxTokens: MAX_TOKENS, chat: true });
    expect((await chatText(server, QUERY, MAX_TOKENS)).text).toBe(expected);

    expect(await server.stop()).toEqual({ code: 0, signal: null });
    // The workers were told to exit with their coordinator.
    for (const w of workers) expect((await w.exited).signal).toBeNull();
  }, SERVER_TEST_MS);
});
