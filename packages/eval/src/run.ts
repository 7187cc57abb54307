// Runs the suite: make every length's cases first (so a length the model cannot hold fails
// before an hour of prefill, not after); per length, run full attention on each (the reference:
// it does not depend on the host count), then every other strategy on every host count, greedy,
// and score each run against the task and against full attention.
import { arch, cpus, platform } from "node:os";
import { basename } from "node:path";
import { RuntimeError, type EngineConfig, type GenerateOptions, type Generation, type PromptTokens, type Strategy } from "@apb/runtime";
import { checkLengths, parseEvalOptions, type EvalOptions, type SuiteSettings } from "./options.js";
import { scoreCase, summarizeCells, type CellSummary, type EvalRecord, type RunOutput } from "./score.js";
import { generateCases, type EvalCase } from "./tasks.js";

/** What the suite needs of a model; @apb/runtime's Model is one. */
export interface EvalModel {
  readonly backend: string;
  readonly dir: {
    /** The model directory or file. */
    readonly path: string;
    readonly config: EngineConfig;
    readonly tokenizer: { encode(text: string, options?: { addSpecialTokens?: boolean }): number[] };
  };
  tokenize(document: string, query: string, messages?: undefined, answerPrefix?: string): PromptTokens;
  generate(options: GenerateOptions): Promise<Generation>;
}

export interface EvalResult {
  suite: SuiteSettings;
  model: {
    name: string;
    path: string;
    architecture: string;
    layers: number;
    hidden: number;
    heads: number;
    kvHeads: number;
    headDim: number;
    vocab: number;
    maxPositions: number;
  };
  machine: { backend: string; platform: string; arch: string; cpu: string; cpus: number; node: string };
  startedAt: string;
  durationMs: number;
  records: EvalRecord[];
  cells: CellSummary[];
}

function modelSummary(model: EvalModel, name: string | undefined): EvalResult["model"] {
  const c = model.dir.config;
  return {
    name: name ?? basename(model.dir.path),
    path: model.dir.path,
    architecture: c.architecture,
    layers: c.layers,
    hidden: c.hidden,
    heads: c.heads,
    kvHeads: c.kvHeads,
    headDim: c.headDim,
    vocab: c.vocab,
    maxPositions: c.maxPositions,
  };
}

function machine(backend: string): EvalResult["machine"] {
  const cores = cpus();
  return { backend, platform: platform(), arch: arch(), cpu: cores[0]?.model.trim() ?? "unknown", cpus: cores.length, node: process.version };
}

/** The cells of one length, in run order: full first (one host), then strategy x hosts. */
function cellsOf(settings: SuiteSettings): { strategy: Strategy; hosts: number }[] {
  const others = settings.strategies.filter((s) => s !== "full");
  return [{ strategy: "full", hosts: 1 }, ...others.flatMap((strategy) => settings.hosts.map((hosts) => ({ strategy, hosts })))];
}

/** The prompt must fit the model's positions with room for the answer. */
function checkFits(model: EvalModel, c: EvalCase, maxTokens: number): number {
  const p = model.tokenize(c.document, c.query, undefined, c.answerPrefix);
  const prompt = p.prefix.length + p.document.length + p.query.length;
  const limit = model.dir.config.maxPositions;
  if (prompt + maxTokens > limit) {
    throw new RuntimeError({
      code: "OUT_OF_RANGE",
      path: "lengths",
      message: `lengths ${c.length} makes prompts of ${prompt} tokens, which with ${maxTokens} new tokens exceed the model's ${limit} positions; use a shorter length`,
    });
  }
  return p.prefix.length + p.document.length;
}

function checkAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new RuntimeError({ code: "CANCELLED", path: "", message: "the evaluation was cancelled" });
}

/** A length's cases, made and checked against the model's positions before anything runs. */
interface Prepared {
  length: number;
  cases: EvalCase[];
  /** Prefix + document tokens of each case (what the hosts split). */
  contextTokens: number[];
}

function prepare(model: EvalModel, settings: SuiteSettings, onProgress: EvalOptions["onProgress"], signal: AbortSignal | undefined, total: number): Prepared[] {
  const countTokens = (text: string) => model.dir.tokenizer.encode(text, { addSpecialTokens: false }).length;
  return settings.lengths.map((length) => {
    checkAborted(signal);
    const cases = generateCases({ length, count: settings.cases, seed: settings.seed, tasks: settings.tasks, ...(settings.depths ? { depths: settings.depths } : {}), countTokens });
    const contextTokens = cases.map((c) => checkFits(model, c, settings.maxTokens ?? c.maxTokens));
    onProgress?.({ kind: "cases", done: 0, total, length, count: cases.length });
    return { length, cases, contextTokens };
  });
}

/** APB's layout options, where given, and the block sizing for apb and star (the other
 * strategies take none). */
function layoutFor(settings: SuiteSettings, strategy: Strategy, hosts: number, contextTokens: number): Partial<GenerateOptions> {
  const balanced = (strategy === "apb" || strategy === "star") && settings.balanced !== null ? { balanced: settings.balanced } : {};
  if (strategy !== "apb") return balanced;
  const passing = settings.passingTokens === "all" ? Math.ceil(contextTokens / hosts) : settings.passingTokens; // "all": a whole block, l_b = ceil(context / hosts)
  return {
    ...balanced,
    ...(settings.anchorTokens !== null ? { anchorTokens: settings.anchorTokens } : {}),
    ...(passing !== null ? { passingTokens: passing } : {}),
  };
}

function recordOf(c: EvalCase, strategy: Strategy, hosts: number, g: Generation, reference: RunOutput): EvalRecord {
  return {
    caseId: c.id,
    task: c.task,
    length: c.length,
    depth: c.depth,
    strategy,
    hosts,
    answers: c.answers,
    text: g.text,
    tokens: g.tokens,
    promptTokens: g.promptTokens.prefix + g.promptTokens.document + g.promptTokens.query,
    prefillMs: g.timings.prefillMs,
    prefillWallMs: g.timings.prefillWallMs,
    ...scoreCase(g, reference, c.answers),
  };
}

export async function runEval(model: EvalModel, options: EvalOptions): Promise<EvalResult> {
  const settings = parseEvalOptions(options);
  checkLengths(settings, model.dir.config.maxPositions);
  const started = Date.now();
  const cells = cellsOf(settings);
  const total = settings.lengths.length * settings.cases * cells.length;
  const { onProgress, signal } = options;
  const prepared = prepare(model, settings, onProgress, signal, total);
  const records: EvalRecord[] = [];
  for (const { length, cases, contextTokens } of prepared) {
    const reference: RunOutput[] = [];
    for (const { strategy, hosts } of cells) {
      for (const [i, c] of cases.entries()) {
        checkAborted(signal);
        const layout = layoutFor(settings, strategy, hosts, contextTokens[i]!);
        const g = await model.generate({ document: c.document, query: c.query, answerPrefix: c.answerPrefix, strategy, hosts, ...layout, maxTokens: settings.maxTokens ?? c.maxTokens, temperature: 0 });
        if (strategy === "full") reference[i] = g;
        const record = recordOf(c, strategy, hosts, g, reference[i]!);
        records.push(record);
        onProgress?.({ kind: "case", done: records.length, total, record });
      }
      // Summarized beside full's records, which "lost against full" needs.
      const cell = summarizeCells(records).find((s) => s.length === length && s.strategy === strategy && s.hosts === hosts)!;
      onProgress?.({ kind: "cell", done: records.length, total, cell });
    }
  }
  return {
    suite: settings,
    model: modelSummary(model, options.modelName),
    machine: machine(model.backend),
    startedAt: new Date(started).toISOString(),
    durationMs: Date.now() - started,
    records,
    cells: summarizeCells(records),
  };
}
