// `apb demo`: the real job on a real model. SmolLM2-135M-Instruct (fetched once) reads a long
// generated document with one hidden fact and answers a question about it, with full
// attention and with APB, Star and Ring prefill over emulated hosts; then the planner's view
// of a 128K prompt on 8 hosts.
import type { Command } from "commander";
import { defaultPlanner } from "@apb/planner";
import { generateCase, isCorrect } from "@apb/eval";
import { agreeingPrefix, BACKENDS, DEFAULT_HOSTS, doctor, loadModel, REQUEST_LIMITS, resolveModel, type BackendName, type Generation, type Strategy } from "@apb/runtime";
import { withCtrlC } from "../interrupt.js";
import { parseChoice, parseTokens, parseWhole } from "../parse.js";
import { ms } from "../render/format.js";
import { formatTable } from "../render/table.js";
import { renderComparison } from "./plan.js";

interface Options {
  model: string;
  backend?: string;
  length?: string;
  hosts: string;
  seed: string;
}

const STRATEGIES: readonly Strategy[] = ["full", "apb", "star", "ring"];

/** CUDA where this build has kernels and a GPU can run them; else the CPU. */
function defaultBackend(): BackendName {
  try {
    const d = doctor();
    return d.backends.includes("cuda") && d.gpus.some((g) => g.kernel !== "none") && d.cublas.found ? "cuda" : "cpu";
  } catch {
    return "cpu";
  }
}

function backendOf(text: string | undefined): BackendName {
  return text === undefined ? defaultBackend() : parseChoice("--backend", text, BACKENDS);
}

function progressLine(): ((done: number, total: number) => void) | undefined {
  if (!process.stderr.isTTY) return undefined;
  return (done, total) => process.stderr.write(`\rapb: loading weights ${done}/${total}${done === total ? "\n" : ""}`);
}

export function registerDemo(program: Command): void {
  program
    .command("demo")
    .description("Ask a real model (SmolLM2-135M-Instruct) about a fact hidden in a long document, with full, APB, Star and Ring prefill; then plan 128K on 8 hosts")
    .option("--model <name|path>", "a named model, GGUF file or model directory", "smollm2-135m-instruct")
    .option("--backend <name>", `${BACKENDS.join("|")} (default: cuda where a GPU is found)`)
    .option("--length <tokens>", "document length in tokens (default 2K on the CPU, 8K on a GPU)")
    .option("--hosts <n>", "emulated hosts (at least 2)", String(DEFAULT_HOSTS))
    .option("--seed <n>", "which document and fact", "7")
    .action(async (o: Options) => {
      // Every flag is checked before the model is fetched or loaded.
      const hosts = parseWhole("--hosts", o.hosts, { min: 2, max: REQUEST_LIMITS.maxHosts });
      const seed = parseWhole("--seed", o.seed);
      const lengthFlag = o.length === undefined ? undefined : parseTokens("--length", o.length, { min: 1 });
      const backend = backendOf(o.backend);
      const length = lengthFlag ?? (backend === "cuda" ? 8192 : 2048);
      await withCtrlC("demo", (signal) => askModel({ model: o.model, backend, hosts, length, seed }, signal));

      const planner = await defaultPlanner();
      const comparison = planner.compare({ model: "llama-3.1-8b", contextTokens: 131_072, hosts: 8 });
      process.stdout.write(`== The planner: Llama-3.1-8B, 128K tokens, 8 H100 hosts (predicted) ==\n\n${renderComparison(comparison, "llama-3.1-8b", "h100-ib")}\n`);
    });
}

/** The model's part: one hidden fact, every strategy, one row each. */
async function askModel(o: { model: string; backend: BackendName; hosts: number; length: number; seed: number }, signal: AbortSignal): Promise<void> {
  const file = await resolveModel(o.model, { onStatus: (m) => process.stderr.write(`apb: ${m}\n`), signal });
  const progress = progressLine();
  const model = await loadModel(file, { backend: o.backend, signal, ...(progress ? { onProgress: progress } : {}) });
  try {
    const countTokens = (text: string) => model.dir.tokenizer.encode(text, { addSpecialTokens: false }).length;
    // The fact sits at 40% of the document: inside a middle host's block, where only what
    // that host passes on (APB) or nothing (Star) carries it to the query.
    const c = generateCase({ task: "needle-number", length: o.length, depth: 0.4, seed: o.seed, countTokens });
    const fact = c.needles[0]!;
    const run = (strategy: Strategy): Promise<Generation> =>
      model.generate({ document: c.document, query: c.query, answerPrefix: c.answerPrefix, strategy, hosts: strategy === "full" ? 1 : o.hosts, maxTokens: c.maxTokens, signal });

    process.stdout.write(
      `== ${o.model} on the ${o.backend.toUpperCase()}: a ${c.documentTokens}-token document with one hidden fact, ${o.hosts} emulated hosts ==\n\n` +
        `hidden at ${Math.round((fact.offset / c.document.length) * 100)}% of the document: "${fact.text}"\n` +
        `question: ${c.query}\nthe answer starts: "${c.answerPrefix} ..."\n\n`,
    );
    const full = await run("full");
    const rows: string[][] = [];
    for (const strategy of STRATEGIES) {
      const g = strategy === "full" ? full : await run(strategy);
      rows.push([
        strategy,
        String(g.layout.hosts),
        String(g.layout.anchorTokens),
        String(g.layout.passingTokens),
        ms(g.timings.firstTokenWallMs),
        ms(g.timings.prefillMs),
        isCorrect(g.text, c.answers) ? "yes" : "NO",
        strategy === "full" ? "-" : `${agreeingPrefix(g.tokens, full.tokens)}/${full.tokens.length}`,
        JSON.stringify(g.text.trim()),
      ]);
    }
    process.stdout.write(
      formatTable(["strategy", "hosts", "l_a", "l_p", "first token ms", "host prefill ms", "found it", "tokens = full", "answer"], rows) +
        `\n\nexpected answer: ${c.answers.join(", ")}\n` +
        "first token ms: wall time on this machine to the first generated token, the emulated hosts taking turns;\n" +
        "host prefill ms: the slowest host's own prefill work, about what a group of real hosts would wait for.\n" +
        "Ring is exact; APB and Star approximate.\n\n",
    );
  } finally {
    model.dispose();
  }
}
