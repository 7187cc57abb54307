// `apb run`: prefill a document with a strategy and answer a query about it.
import { readFileSync, writeFileSync } from "node:fs";
import type { Command } from "commander";
import { CoordinatorClient } from "@apb/control-plane";
import { BACKENDS, buildHostRequest, loadModel, modelFingerprint, openModelDir, resolveModel, STRATEGIES, type BackendName, type GenerateOptions, type Generation, type Strategy } from "@apb/runtime";
import { generationOfJob, jobOf } from "../hosts/job.js";
import { startLocalGroup } from "../hosts/launch.js";
import { SingleBar } from "cli-progress";
import { UsageError } from "../errors.js";
import { parseTokens, parseWhole } from "../parse.js";
import { summaryLine, timingTable } from "../render/run.js";

interface Options {
  model: string;
  promptFile: string;
  query: string;
  strategy: string;
  hosts: string;
  anchor?: string;
  passing?: string;
  balanced?: boolean;
  backend: string;
  maxTokens: string;
  temperature: string;
  topP: string;
  seed: string;
  retainingHeads?: string;
  json?: boolean;
  processes?: boolean;
  coordinator?: string;
  token?: string;
  logitsOut?: string;
  groupTimeoutMs: string;
  ignoreEos?: boolean;
}

function number(flag: string, text: string): number {
  const v = Number(text);
  if (!Number.isFinite(v)) throw new UsageError(`${flag} must be a number, got '${text}'`);
  return v;
}

function readPrompt(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (e) {
    throw new UsageError(`--prompt-file: cannot read ${file}: ${(e as Error).message}`);
  }
}

export function registerRun(program: Command): void {
  program
    .command("run")
    .description("Prefill a document across emulated hosts and answer a query about it")
    .requiredOption("--model <path|name>", "a Hugging Face model directory, a GGUF file, or a named model (see apb models)")
    .requiredOption("--prompt-file <file>", "the document (long context) as text")
    .requiredOption("--query <text>", "the question about the document")
    .option("--strategy <name>", STRATEGIES.join("|"), "apb")
    .option("--hosts <n>", "emulated hosts", "4")
    .option("--anchor <tokens>", "anchor length l_a (default l_b/4)")
    .option("--passing <tokens>", "passing length l_p (default l_b/8)")
    .option("--balanced", "size blocks so all hosts finish together")
    .option("--backend <name>", BACKENDS.join("|"), "cpu")
    .option("--max-tokens <n>", "tokens to generate", "32")
    .option("--temperature <t>", "0 for greedy", "0")
    .option("--top-p <p>", "nucleus sampling mass", "1")
    .option("--seed <n>", "sampling seed", "0")
    .option("--ignore-eos", "generate --max-tokens tokens even past the model's end-of-sequence token (for benchmarks)")
    .option("--retaining-heads <file>", "Locret retaining heads (safetensors) to score passing blocks")
    .option("--processes", "run each host as its own process on this machine (one per GPU with --backend cuda)")
    .option("--coordinator <url>", "send the job to the group of a running `apb coordinator` (ws://HOST:PORT)")
    .option("--token <token>", "the coordinator's token (default $APB_TOKEN)")
    .option("--group-timeout-ms <ms>", "how long to wait for the group to form", "600000")
    .option("--logits-out <file>", "write the first generated token's logits (little-endian float32) to a file")
    .option("--json", "print JSON only")
    .action(async (o: Options) => {
      if (!(STRATEGIES as readonly string[]).includes(o.strategy)) {
        throw new UsageError(`--strategy must be one of ${STRATEGIES.join(", ")}; got '${o.strategy}'`);
      }
      if (!(BACKENDS as readonly string[]).includes(o.backend)) {
        throw new UsageError(`--backend must be one of ${BACKENDS.join(", ")}; got '${o.backend}'`);
      }
      if (o.processes && o.coordinator) throw new UsageError("--processes starts its own hosts; --coordinator uses a running group: give one of them");
      const document = readPrompt(o.promptFile);
      const options: GenerateOptions = {
        document,
        query: o.query,
        strategy: o.strategy as Strategy,
        hosts: parseWhole("--hosts", o.hosts),
        ...(o.anchor !== undefined ? { anchorTokens: parseTokens("--anchor", o.anchor) } : {}),
        ...(o.passing !== undefined ? { passingTokens: parseTokens("--passing", o.passing) } : {}),
        ...(o.balanced ? { balanced: true } : {}),
        ...(o.retainingHeads ? { scorer: "retaining-heads" as const } : {}),
        maxTokens: parseWhole("--max-tokens", o.maxTokens),
        temperature: number("--temperature", o.temperature),
        topP: number("--top-p", o.topP),
        seed: parseWhole("--seed", o.seed),
        ...(o.ignoreEos ? { stopTokenIds: [] } : {}),
      };
      o.model = await resolveModel(o.model, { onStatus: (m) => process.stderr.write(`apb: ${m}\n`) });
      const generation = o.processes || o.coordinator ? await runOnGroup(o, options) : await runEmulated(o, options);
      if (o.logitsOut) writeFileSync(o.logitsOut, Buffer.from(generation.firstLogits.buffer, generation.firstLogits.byteOffset, generation.firstLogits.byteLength));
      if (o.json) {
        const { firstLogits: _logits, ...rest } = generation;
        process.stdout.write(`${JSON.stringify(rest, null, 2)}\n`);
        return;
      }
      process.stdout.write(`answer: ${JSON.stringify(generation.text)}\n\n${summaryLine(generation)}\n\n${timingTable(generation)}\n`);
    });
}

/** Hosts emulated in this process. */
async function runEmulated(o: Options, options: GenerateOptions): Promise<Generation> {
  const bar = !o.json && process.stderr.isTTY ? new SingleBar({ format: "loading weights [{bar}] {value}/{total}", stream: process.stderr }) : null;
  const model = await loadModel(o.model, {
    backend: o.backend as BackendName,
    ...(o.retainingHeads ? { retainingHeads: o.retainingHeads } : {}),
    onProgress: (done, total) => {
      if (!bar) return;
      if (done <= 1) bar.start(total, done);
      else bar.update(done);
      if (done === total) bar.stop();
    },
  });
  return model.generate(options);
}

/** Hosts that are processes: started here (--processes) or a running coordinator's group. */
async function runOnGroup(o: Options, options: GenerateOptions): Promise<Generation> {
  if (o.retainingHeads) throw new UsageError("--retaining-heads runs on emulated hosts only for now; drop it, or drop --processes/--coordinator");
  // The caller tokenizes; hosts receive token ids, so all of them agree on the prompt.
  const dir = await openModelDir(o.model);
  const { request, prompt } = buildHostRequest(dir, options);
  if (o.coordinator) {
    const token = o.token ?? process.env.APB_TOKEN;
    if (!token) throw new UsageError("--token is required with --coordinator (or set APB_TOKEN)");
    const client = await CoordinatorClient.connect(o.coordinator, token, { timeoutMs: 10_000 });
    try {
      return generationOfJob(dir, request, prompt, await client.submit(jobOf(request), { groupTimeoutMs: parseWhole("--group-timeout-ms", o.groupTimeoutMs) }));
    } finally {
      await client.close();
    }
  }
  const group = await startLocalGroup({ modelPath: dir.path, fingerprint: modelFingerprint(dir), hosts: request.hosts, backend: o.backend as BackendName, formTimeoutMs: parseWhole("--group-timeout-ms", o.groupTimeoutMs) });
  try {
    await group.ready();
    return generationOfJob(dir, request, prompt, await group.coordinator.submit(jobOf(request)));
  } finally {
    await group.stop();
  }
}
