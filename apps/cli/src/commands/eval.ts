// `apb eval`: the RULER-style suite of @apb/eval on a model: every strategy against full
// attention on the same synthetic long-context cases, as a table or JSON.
import { existsSync, renameSync, writeFileSync } from "node:fs";
import { basename, dirname, resolve } from "node:path";
import type { Command } from "commander";
import { NEEDLE_TASKS, parseEvalOptions, runEval, TASKS, type CellSummary, type EvalOptions, type EvalProgress, type EvalRecord, type TaskName } from "@apb/eval";
import { BACKENDS, DEFAULT_HOSTS, loadModel, resolveModel, RuntimeError, type Strategy } from "@apb/runtime";
import { parseChoice, parseTokens, parseWhole } from "../parse.js";
import { progressReporter, renderEval } from "../render/eval.js";
import { loadingBar } from "../render/loading-bar.js";
import { onCtrlC } from "../interrupt.js";
import { withWords, type Words } from "../words.js";

interface Options {
  model: string;
  lengths: string;
  strategies: string;
  hosts: string;
  cases?: string;
  tasks: string;
  seed: string;
  maxTokens?: string;
  balanced?: boolean;
  backend: string;
  json?: boolean;
  out?: string;
}

/** runEval's option names as `eval` names them. */
const EVAL_WORDS: Words = {
  lengths: "--lengths",
  strategies: "--strategies",
  hosts: "--hosts",
  cases: "--cases",
  tasks: "--tasks",
  seed: "--seed",
  maxTokens: "--max-tokens",
  balanced: "--balanced",
};

const list = (text: string) => text.split(",").map((s) => s.trim()).filter((s) => s.length > 0);

/** "all", "needle" (the single-needle tasks) or task names. */
function tasksOf(text: string): TaskName[] {
  return list(text).flatMap((t) => (t === "all" ? [...TASKS] : t === "needle" ? [...NEEDLE_TASKS] : [t as TaskName]));
}

function suiteOptions(o: Options): EvalOptions {
  return {
    lengths: list(o.lengths).map((l) => parseTokens("--lengths", l)),
    strategies: list(o.strategies) as Strategy[],
    hosts: list(o.hosts).map((h) => parseWhole("--hosts", h)),
    ...(o.cases !== undefined ? { cases: parseWhole("--cases", o.cases) } : {}),
    tasks: tasksOf(o.tasks),
    seed: parseWhole("--seed", o.seed),
    ...(o.maxTokens !== undefined ? { maxTokens: parseWhole("--max-tokens", o.maxTokens) } : {}),
    ...(o.balanced !== undefined ? { balanced: o.balanced } : {}),
  };
}

export function registerEval(program: Command): void {
  program
    .command("eval")
    .description("Measure APB, Star and Ring against full attention on synthetic long-context tasks (RULER-style needles)")
    .requiredOption("--model <path>", "a Hugging Face model directory, a .gguf file, or a named model (smollm2-135m-instruct, fetched once)")
    .option("--lengths <list>", "document lengths in the model's tokens, e.g. 1K,2K", "1K,2K")
    .option("--strategies <list>", "strategies to compare with full attention (full always runs: it is the reference)", "full,apb,star,ring")
    .option("--hosts <list>", "emulated host counts for every strategy but full", String(DEFAULT_HOSTS))
    .option("--cases <n>", "cases per (length, strategy, hosts) cell (default: one per task)")
    .option("--tasks <list>", `all, needle (the single-needle tasks), or any of ${TASKS.join(", ")}`, "all")
    .option("--seed <n>", "seed of the generated cases", "0")
    .option("--max-tokens <n>", "new tokens per case (default: enough for each task's answer)")
    .option("--balanced", "balanced block sizes, so all hosts finish together (the default for apb; star only when given)")
    .option("--no-balanced", "the paper's even split for apb (star and the others always split evenly unless --balanced)")
    .option("--backend <name>", BACKENDS.join("|"), "cpu")
    .option("--json", "print the result as JSON on stdout (errors as JSON on stderr)")
    .option("--out <file>", "also write the result as JSON to a file")
    .action(async (o: Options) => {
      const backend = parseChoice("--backend", o.backend, BACKENDS);
      // A result with nowhere to go is found out before the run, not after it.
      if (o.out && !existsSync(dirname(resolve(o.out)))) {
        throw new RuntimeError({ code: "INVALID_INPUT", path: "--out", message: `--out: the directory of ${o.out} does not exist` });
      }
      const options = suiteOptions(o);
      // Everything that needs no model is checked before the weights load.
      await withWords(EVAL_WORDS, async () => parseEvalOptions(options));
      // Ctrl-C stops the load or the generation in flight; --out keeps what finished.
      const ctrlC = onCtrlC("eval");
      const progress = progressReporter();
      try {
        const path = await resolveModel(o.model, { onStatus: (m) => process.stderr.write(`apb: ${m}\n`), signal: ctrlC.signal });
        const onLoad = loadingBar();
        const model = await loadModel(path, { backend, signal: ctrlC.signal, ...(onLoad ? { onProgress: onLoad } : {}) });
        try {
          const result = await withWords(EVAL_WORDS, () => runEval(model, { ...options, modelName: basename(o.model), onProgress: keepFinished(o.out, progress), signal: ctrlC.signal }));
          progress.stop();
          const json = `${JSON.stringify(result, null, 2)}\n`;
          if (o.out) writeFileSync(o.out, json);
          process.stdout.write(o.json ? json : `${renderEval(result)}\n`);
        } finally {
          model.dispose();
        }
      } catch (e) {
        throw ctrlC.explain(e);
      } finally {
        progress.stop();
        ctrlC.release();
      }
    });
}

/** Reports progress; with --out, a long run killed midway keeps what it finished: the file
 * holds every finished cell and case ({"partial": true, ...}) until the whole result replaces it. */
function keepFinished(out: string | undefined, progress: { onProgress: (e: EvalProgress) => void }): (e: EvalProgress) => void {
  const finished: { cells: CellSummary[]; records: EvalRecord[] } = { cells: [], records: [] };
  return (event) => {
    progress.onProgress(event);
    if (!out) return;
    if (event.kind === "case") finished.records.push(event.record);
    if (event.kind !== "cell") return;
    finished.cells.push(event.cell);
    writeFileSync(`${out}.part`, `${JSON.stringify({ partial: true, ...finished }, null, 2)}\n`);
    renameSync(`${out}.part`, out);
  };
}
