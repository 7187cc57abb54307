// `apb run`: prefill a document with a strategy and answer a query about it. Every flag is
// checked before the prompt is read; the answer streams to stdout as it is generated, then a
// summary that tells wall time to the first token first; --json prints one object instead.
import { writeFileSync } from "node:fs";
import type { Command } from "commander";
import { CoordinatorClient, type JobProgress } from "@apb/control-plane";
import type { JobResult, JobSpec } from "@apb/protocol";
import {
  BACKENDS,
  buildHostRequest,
  DEFAULT_HOSTS,
  DEFAULT_MAX_TOKENS,
  generationOfJob,
  jobOf,
  loadModel,
  modelFingerprint,
  openModelDir,
  resolveModel,
  STRATEGIES,
  tokenText,
  type GenerateOptions,
  type Generation,
  type LoadOptions,
  type PrefillProgress as HostLayerDone,
} from "@apb/runtime";
import { startLocalGroup } from "../hosts/launch.js";
import { onCtrlC, type CtrlC } from "../interrupt.js";
import { readPrompt } from "../prompt.js";
import { loadingBar } from "../render/loading-bar.js";
import { prefillProgress, type PrefillProgress } from "../render/prefill-progress.js";
import { summaryLines, timingTable } from "../render/run.js";
import { withWords } from "../words.js";
import { RUN_WORDS, runSettings, type RunFlags, type RunSettings } from "./run-settings.js";

export function registerRun(program: Command): void {
  program
    .command("run")
    .description("Prefill a document across hosts (emulated in this process, or processes) and answer a query about it")
    .requiredOption("--model <path|name>", "a Hugging Face model directory, a GGUF file, or a named model (see apb models)")
    .requiredOption("--prompt-file <file>", "the document (long context) as text; - reads standard input")
    .requiredOption("--query <text>", "the question about the document")
    .option("--strategy <name>", STRATEGIES.join("|"), "apb")
    .option("--hosts <n>", "hosts", String(DEFAULT_HOSTS))
    .option("--anchor <tokens>", "anchor length l_a (default l_b/4)")
    .option("--passing <tokens>", "passing length l_p (default l_b/8)")
    .option("--balanced", "balanced block sizes, so all hosts finish together (the default for apb; star only when given)")
    .option("--no-balanced", "the paper's even split for apb (star and the others always split evenly unless --balanced)")
    .option("--backend <name>", BACKENDS.join("|"), "cpu")
    .option("--max-tokens <n>", "tokens to generate, at most", String(DEFAULT_MAX_TOKENS))
    .option("--temperature <t>", "0 for greedy", "0")
    .option("--top-p <p>", "nucleus sampling mass", "1")
    .option("--seed <n>", "sampling seed", "0")
    .option("--ignore-eos", "generate --max-tokens tokens even past the model's end-of-sequence token (for benchmarks)")
    .option("--allow-long-prompt", "run a prompt longer than the model's positions (max_position_embeddings); answers past them are unreliable")
    .option("--no-chat-template", "prompt with the text as written (BOS, document, a blank line, query), not the model's chat template: what POST /v1/completions does")
    .option("--retaining-heads <file>", "Locret retaining heads (safetensors) to score passing blocks")
    .option("--processes", "run each host as its own process on this machine (one per GPU with --backend cuda)")
    .option("--coordinator <url>", "send the job to the group of a running `apb coordinator` (ws://HOST:PORT)")
    .option("--token <token>", "the coordinator's token (default $APB_TOKEN)")
    .option("--group-timeout-ms <ms>", "how long to wait for the group to form", "600000")
    .option("--logits-out <file>", "write the first generated token's logits (little-endian float32) to a file")
    .option("--json", "print one JSON object (errors too, on stderr) instead of the streamed answer and a summary")
    .action(async (flags: RunFlags) => {
      const s = runSettings(flags);
      const document = await readPrompt("--prompt-file", s.promptFile);
      const ctrlC = onCtrlC("run");
      const out = answerOutput(s.json);
      let generation: Generation;
      try {
        const modelPath = await resolveModel(s.model, { onStatus: (m) => process.stderr.write(`apb: ${m}\n`), signal: ctrlC.signal });
        const options = { ...s.request, document };
        generation = await withWords(RUN_WORDS, () => (s.hosts.kind === "emulated" ? runEmulated(s, modelPath, options, out, ctrlC) : runOnGroup(s, modelPath, options, out, ctrlC)));
      } catch (e) {
        throw ctrlC.explain(e);
      } finally {
        out.progress?.stop();
        ctrlC.release();
      }
      if (s.logitsOut) writeFileSync(s.logitsOut, Buffer.from(generation.firstLogits.buffer, generation.firstLogits.byteOffset, generation.firstLogits.byteLength));
      if (s.json) {
        const { firstLogits: _logits, ...rest } = generation;
        process.stdout.write(`${JSON.stringify(rest, null, 2)}\n`);
        return;
      }
      process.stdout.write(`\n\n${summaryLines(generation).join("\n")}\n\n${timingTable(generation)}\n`);
    });
}

/** Where the answer goes as it is generated: stdout in text mode (the progress bars on
 * stderr end first, so a terminal showing both does not mix them); nowhere with --json. */
interface AnswerOutput {
  progress: PrefillProgress | null;
  onText(piece: string): void;
}

function answerOutput(json: boolean): AnswerOutput {
  const progress = json ? null : prefillProgress();
  return {
    progress,
    onText(piece) {
      progress?.stop();
      if (!json && piece) process.stdout.write(piece);
    },
  };
}

/** Hosts emulated in this process. */
async function runEmulated(s: RunSettings, path: string, options: GenerateOptions, out: AnswerOutput, ctrlC: CtrlC): Promise<Generation> {
  const onLoad = s.json ? undefined : loadingBar();
  const load: LoadOptions = {
    backend: s.backend,
    signal: ctrlC.signal,
    ...(s.retainingHeads ? { retainingHeads: s.retainingHeads } : {}),
    ...(onLoad ? { onProgress: onLoad } : {}),
  };
  // What the request can be told from the model's files alone (a prompt past its positions,
  // bad options) is refused before the weights load, which can take minutes.
  buildHostRequest(await openModelDir(path), options);
  const model = await loadModel(path, load);
  try {
    const progress = out.progress;
    return await model.generate({
      ...options,
      signal: ctrlC.signal,
      onToken: (piece) => out.onText(piece),
      ...(progress ? { onProgress: (p: HostLayerDone) => progress.onLayer(p) } : {}),
    });
  } finally {
    // The weights (and on a GPU their memory) go back as soon as the answer is in.
    model.dispose();
  }
}

/** Submits a job to a group and measures its first token as this caller sees it. */
async function submitted(
  submit: (job: JobSpec, io: { onToken(id: number): void; onProgress(p: JobProgress): void; signal: AbortSignal }) => Promise<JobResult>,
  job: JobSpec,
  hosts: number,
  out: AnswerOutput,
  ctrlC: CtrlC,
  text: ReturnType<typeof tokenText>,
): Promise<{ result: JobResult; firstTokenWallMs: number }> {
  const start = performance.now();
  let first: number | null = null;
  const result = await submit(job, {
    signal: ctrlC.signal,
    onToken: (id) => {
      first ??= performance.now() - start;
      text.push(id);
    },
    // Hosts report "prefill" (layer done of total) and "done"; each host's bar counts its layers.
    onProgress: (p) => p.phase === "prefill" && p.total > 1 && out.progress?.onLayer({ host: p.rank, hosts, layer: p.done, layers: p.total }),
  });
  text.finish(result.tokens);
  return { result, firstTokenWallMs: first ?? result.firstTokenMs ?? result.wallMs };
}

/** Hosts that are processes: started here (--processes) or a running coordinator's group. */
async function runOnGroup(s: RunSettings, path: string, options: GenerateOptions, out: AnswerOutput, ctrlC: CtrlC): Promise<Generation> {
  // The caller tokenizes; hosts receive token ids, so all of them agree on the prompt.
  const dir = await openModelDir(path);
  const { request, prompt } = buildHostRequest(dir, options);
  const text = tokenText(dir, (piece) => out.onText(piece));
  if (s.hosts.kind === "coordinator") {
    const client = await CoordinatorClient.connect(s.hosts.url, s.hosts.token, { timeoutMs: 10_000 });
    try {
      const groupTimeoutMs = s.hosts.groupTimeoutMs;
      const r = await submitted((job, io) => client.submit(job, { ...io, groupTimeoutMs }), jobOf(request), request.hosts, out, ctrlC, text);
      return generationOfJob(dir, request, prompt, r.result, r.firstTokenWallMs);
    } finally {
      await client.close();
    }
  }
  const group = await startLocalGroup({ modelPath: dir.path, fingerprint: modelFingerprint(dir), hosts: request.hosts, backend: s.backend, formTimeoutMs: s.hosts.kind === "processes" ? s.hosts.groupTimeoutMs : 0 });
  try {
    await group.ready();
    const r = await submitted((job, io) => group.coordinator.submit(job, io), jobOf(request), request.hosts, out, ctrlC, text);
    return generationOfJob(dir, request, prompt, r.result, r.firstTokenWallMs);
  } finally {
    await group.stop();
  }
}
