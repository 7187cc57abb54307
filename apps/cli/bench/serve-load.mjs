#!/usr/bin/env node
// `apb serve` under load: starts the built CLI's server (local workers, one per host), sends
// --requests chat requests from --concurrency clients with the official OpenAI client (every
// other one streamed), and measures what the clients see: answered and refused (429) counts,
// latency (wall time per answered request), time to first token, requests/s and generated
// tokens/s. Writes bench/results/serve-load-<backend>.json and .md at the repository's root.
//
//   npm run bench -w @apb/cli -- [--model PATH] [--hosts 2] [--backend cpu|cuda] [--requests 200]
//     [--concurrency 16] [--max-queue 64] [--max-tokens 16] [--document-tokens 2000]
//   node bench/serve-load.mjs --render [--backend cpu]   (the markdown again from the JSON)
//
// Without --model it writes a tiny random model to a temp dir (2 layers, hidden 64), so the
// figures are the server's and the group's overhead more than the model's.
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { join, resolve as resolvePath } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import OpenAI from "openai";


const { values: a } = parseArgs({
  options: {
    model: { type: "string" },
    hosts: { type: "string", default: "2" },
    backend: { type: "string", default: "cpu" },
    requests: { type: "string", default: "200" },
    concurrency: { type: "string", default: "16" },
    "max-queue": { type: "string", default: "64" },
    "max-tokens": { type: "string", default: "16" },
    "document-tokens": { type: "string", default: "2000" },
    strategy: { type: "string", default: "apb" },
    label: { type: "string" },
    cli: { type: "string" },
    out: { type: "string" },
    render: { type: "boolean", default: false },
  },
});
// --cli: the apb to run (a bundle's bin/apb on a machine without the repository's build);
// --out: where results go (default the repository's bench/results).
const BIN = a.cli ? resolvePath(a.cli) : fileURLToPath(new URL("../dist/bin.js", import.meta.url));
const command = (args) => (BIN.endsWith(".js") || BIN.endsWith(".mjs") ? [process.execPath, [BIN, ...args]] : [BIN, args]);
const out = a.out ? pathToFileURL(`${resolvePath(a.out)}/`) : new URL("../../../bench/results/", import.meta.url);
if (!["cpu", "cuda"].includes(a.backend)) throw new Error(`--backend must be cpu or cuda, got '${a.backend}'`);
const name = `serve-load-${a.label ?? a.backend}`;

if (a.render) {
  const result = JSON.parse(readFileSync(new URL(`${name}.json`, out), "utf8"));
  writeFileSync(new URL(`${name}.md`, out), render(result));
  process.exit(0);
}

const whole = (flag, min = 1) => {
  const n = Number(a[flag]);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${flag} must be an integer >= ${min}, got '${a[flag]}'`);
  return n;
};
const settings = {
  hosts: whole("hosts"),
  backend: a.backend,
  requests: whole("requests"),
  concurrency: whole("concurrency"),
  maxQueue: whole("max-queue", 0),
  maxTokens: whole("max-tokens"),
  documentTokens: whole("document-tokens"),
  streamed: "every other request",
  ignoreEos: true,
  strategy: a.strategy,
};

let tempDir = null;
let modelPath = a.model;
const modelLabel = a.model ?? "tiny random model (2 layers, hidden 64, byte-level tokenizer)";
if (!modelPath) {
  tempDir = mkdtempSync(join(tmpdir(), "apb-serve-load-"));
  modelPath = join(tempDir, "tiny");
  const made = await runToEnd(["make-tiny-model", modelPath, "--seed", "2"]);
  if (made.code !== 0) throw new Error(`make-tiny-model failed: ${made.err}`);
}

function runToEnd(args) {
  return new Promise((resolve) => {
    const [file, argv] = command(args);
    const child = spawn(file, argv, { stdio: ["ignore", "pipe", "pipe"] });
    let err = "";
    child.stdout.resume();
    child.stderr.setEncoding("utf8").on("data", (d) => (err += d));
    child.on("close", (code) => resolve({ code, err }));
  });
}

// The server, on any free port; its URL is in its log.
const server = spawn(...command(["serve", "--model", modelPath, "--model-name", "bench", "--hosts", String(settings.hosts), "--backend", settings.backend, "--strategy", settings.strategy, "--port", "0", "--max-queue", String(settings.maxQueue)]), {
  stdio: ["ignore", "ignore", "pipe"],
  env: { ...process.env, LOG_LEVEL: "info" },
});
let serverLog = "";
let serverExit = null;
const serverExited = new Promise((resolve) => server.on("close", (code, signal) => resolve((serverExit = { code, signal }))));
server.stderr.setEncoding("utf8").on("data", (d) => (serverLog += d));
process.on("exit", () => server.exitCode === null && server.kill("SIGKILL"));

async function waitFor(what, check, deadlineMs = 600_000) {
  const until = Date.now() + deadlineMs;
  for (;;) {
    if (serverExit) throw new Error(`apb serve exited (${JSON.stringify(serverExit)}) while waiting for ${what}:\n${serverLog}`);
    const v = await check().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const url = await waitFor("the server's URL", async () => {
  for (const line of serverLog.split("\n")) {
    const m = /"url":"(http:[^"]+)".*"msg":"apb serve listening/.exec(line);
    if (m) return m[1];
  }
  return undefined;
});
const health = await waitFor("the group to form (/health ready)", async () => {
  const r = await fetch(`${url}/health`);
  return r.status === 200 ? r.json() : undefined;
});
const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: "unused", maxRetries: 0, timeout: 3_600_000 });

// A document of about --document-tokens tokens in this model's tokenizer: one request tells
// how many tokens a sentence takes.
const sentences = [
  "The archive holds letters, maps and ledgers from the old harbour town. ",
  "Each ledger lists the ships that came in, their cargo and the fees they paid. ",
  "The letters are from merchants to their families, written over forty years. ",
];
const queries = ["Which town do the letters come from?", "What do the ledgers list?", "Who wrote the letters?", "How many years do the letters span?"];
const docOf = (n) => Array.from({ length: n }, (_, i) => sentences[i % sentences.length]).join("");
const ask = (doc, query, maxTokens, stream) => ({
  model: "bench",
  messages: [{ role: "user", content: `${doc}\n\n${query}` }],
  max_tokens: maxTokens,
  ignore_eos: true,
  ...(stream ? { stream: true, stream_options: { include_usage: true } } : {}),
});
const probeSentences = 30;
const probe = await client.chat.completions.create(ask(docOf(probeSentences), queries[0], 1, false));
const perSentence = probe.apb.prompt_tokens.document / probeSentences;
const document = docOf(Math.max(1, Math.round(settings.documentTokens / perSentence)));
// Warm-up (not counted): every query once, alone, which also gives a request's time without a queue.
const alone = [];
for (const q of queries) {
  const start = performance.now();
  await client.chat.completions.create(ask(document, q, settings.maxTokens, false));
  alone.push(performance.now() - start);
}

/** One request as the client sees it. */
async function one(i) {
  const stream = i % 2 === 1;
  const body = ask(document, queries[i % queries.length], settings.maxTokens, stream);
  const start = performance.now();
  try {
    if (!stream) {
      const r = await client.chat.completions.create(body);
      return { i, stream, status: 200, ms: performance.now() - start, firstTokenMs: r.apb.timings.first_token_ms, serverFirstTokenMs: r.apb.timings.first_token_ms, tokens: r.usage.completion_tokens, promptTokens: r.usage.prompt_tokens };
    }
    const chunks = await client.chat.completions.create(body);
    let firstTokenMs = null;
    let serverFirstTokenMs = null;
    let usage = null;
    for await (const c of chunks) {
      if (firstTokenMs === null && c.choices[0]?.delta?.content) firstTokenMs = performance.now() - start;
      if (c.apb) serverFirstTokenMs = c.apb.timings.first_token_ms;
      if (c.usage) usage = c.usage;
    }
    // A first token that prints nothing (the tiny model's first is often one): the server's figure.
    return { i, stream, status: 200, ms: performance.now() - start, firstTokenMs: firstTokenMs ?? serverFirstTokenMs, serverFirstTokenMs, tokens: usage?.completion_tokens ?? 0, promptTokens: usage?.prompt_tokens ?? 0 };
  } catch (e) {
    return { i, stream, status: e?.status ?? -1, ms: performance.now() - start, error: String(e?.message ?? e) };
  }
}

// Other work on the machine slows the server down: the load average before the run says how much there was.
const loadBefore = loadavg()[0];
const results = [];
let next = 0;
const began = performance.now();
await Promise.all(
  Array.from({ length: settings.concurrency }, async () => {
    while (next < settings.requests) results.push(await one(next++));
  }),
);
const wallS = (performance.now() - began) / 1000;
const loadAfter = loadavg()[0];

server.kill("SIGTERM");
const stopTimer = setTimeout(() => server.kill("SIGKILL"), 120_000);
await serverExited;
clearTimeout(stopTimer);
if (tempDir) rmSync(tempDir, { recursive: true, force: true });

const ok = results.filter((r) => r.status === 200);
const pct = (xs, p) => {
  if (!xs.length) return null;
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
};
const mean = (xs) => (xs.length ? xs.reduce((x, y) => x + y, 0) / xs.length : null);
const latencies = ok.map((r) => r.ms);
const ttft = ok.map((r) => r.firstTokenMs).filter((x) => x !== null);
const tokens = ok.reduce((s, r) => s + r.tokens, 0);
const gpus = [...new Set(health.hosts.list.map((h) => h.gpu).filter(Boolean))];
const result = {
  date: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
  machine: { cpu: cpus()[0]?.model.trim() ?? "unknown", cores: cpus().length, memoryGiB: Math.round(totalmem() / 2 ** 30), gpus, node: process.version, platform: process.platform, loadAverage1mBefore: loadBefore, loadAverage1mAfter: loadAfter },
  model: modelLabel,
  settings: { ...settings, promptTokens: ok[0]?.promptTokens ?? null },
  counts: { ok: ok.length, busy429: results.filter((r) => r.status === 429).length, other: results.filter((r) => r.status !== 200 && r.status !== 429).length },
  otherErrors: results.filter((r) => r.status !== 200 && r.status !== 429).slice(0, 5).map((r) => `${r.status}: ${r.error}`),
  aloneLatencyMs: mean(alone),
  aloneRequests: alone.length,
  latencyMs: { p50: pct(latencies, 50), p90: pct(latencies, 90), p99: pct(latencies, 99), mean: mean(latencies) },
  firstTokenMs: { p50: pct(ttft, 50), p99: pct(ttft, 99), streamedP50: pct(ok.filter((r) => r.stream).map((r) => r.firstTokenMs), 50) },
  wallS,
  requestsPerS: ok.length / wallS,
  generatedTokens: tokens,
  generatedTokensPerS: tokens / wallS,
};
mkdirSync(out, { recursive: true });
writeFileSync(new URL(`${name}.json`, out), `${JSON.stringify(result, null, 2)}\n`);
const markdown = render(result);
writeFileSync(new URL(`${name}.md`, out), markdown);
console.log(markdown);

/** The markdown, from a run's JSON alone. */
function render(r) {
  const f = (x, d = 0) => (x === null ? "-" : x.toFixed(d));
  const m = r.machine;
  const s = r.settings;
  const where = m.gpus.length ? `${m.gpus.join(", ")} (${s.hosts} host${s.hosts > 1 ? "s" : ""}, one per GPU); host ${m.cpu}` : `${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB`;
  return `${[
    `# apb serve under load, ${s.backend} (${r.date})`,
    "",
    `${where}, Node ${m.node}, load average ${f(m.loadAverage1mBefore, 2)} before the run and ${f(m.loadAverage1mAfter, 2)} at its end (the run itself adds about ${s.hosts + 1}: the server, its workers and the clients; more is other work on the machine). Written by apps/cli/bench/serve-load.mjs (\`npm run bench -w @apb/cli\`; on a GPU host, \`sh bundle/test/gpu/serve_gpu.sh MODEL\`): \`apb serve\` with ${s.hosts} local worker`,
    `processes (--backend ${s.backend}, --max-queue ${s.maxQueue}), ${s.requests} chat requests from ${s.concurrency} concurrent OpenAI clients, ${s.streamed} streamed;`,
    `${s.promptTokens ?? "?"} prompt tokens each (a document of about ${s.documentTokens} tokens and a question), strategy ${s.strategy}, ${s.maxTokens} tokens generated each (ignore_eos).`,
    `Model: ${r.model}. Times are wall times as the client sees them; the server runs one request at a time on the group, so the others queue.`,
    "",
    "| answered | refused (429) | other | latency p50 ms | p90 ms | p99 ms | mean ms | first token p50 ms | p99 ms | requests/s | generated tokens/s |",
    "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    `| ${r.counts.ok} | ${r.counts.busy429} | ${r.counts.other} | ${f(r.latencyMs.p50)} | ${f(r.latencyMs.p90)} | ${f(r.latencyMs.p99)} | ${f(r.latencyMs.mean)} | ${f(r.firstTokenMs.p50)} | ${f(r.firstTokenMs.p99)} | ${f(r.requestsPerS, 2)} | ${f(r.generatedTokensPerS, 1)} |`,
    "",
    `First token: for streamed requests when the first chunk with text arrived (p50 ${f(r.firstTokenMs.streamedP50)} ms), for the others the response's apb.timings.first_token_ms ` +
      `(the server's time from arrival to the first token). Latency and first token include the time a request waits behind the others: with ${s.concurrency} clients ` +
      `and one job at a time, about ${s.concurrency - 1} wait, so p50 is about ${s.concurrency} times a single request's time ` +
      `(${f(r.aloneLatencyMs)} ms alone, the mean of ${r.aloneRequests} warm-up requests sent one after another). ${r.wallS.toFixed(1)} s in all.`,
  ].join("\n")}\n`;
}
