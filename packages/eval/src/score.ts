// How a strategy's answer is scored: against the task (RULER's string match) and against full
// attention on the same prompt (same tokens, and how far the first token's distribution moved).
import { agreeingPrefix, argmax, type Strategy } from "@apb/runtime";
import type { TaskName } from "./tasks.js";

/** RULER's criterion: how many expected strings appear in the output, ignoring case. */
export function answersFound(output: string, answers: readonly string[]): number {
  const text = output.toLowerCase();
  return answers.filter((a) => text.includes(a.toLowerCase())).length;
}

export function isCorrect(output: string, answers: readonly string[]): boolean {
  return answersFound(output, answers) === answers.length;
}

/** log softmax in float64, shifted by the max so exp never overflows (log-sum-exp). */
export function logSoftmax(logits: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]!);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i]! - max);
  const lse = max + Math.log(sum);
  const out = new Float64Array(logits.length);
  for (let i = 0; i < logits.length; i++) out[i] = logits[i]! - lse;
  return out;
}

/** KL(P || Q) in nats for P = softmax(p), Q = softmax(q): how much Q loses describing P. */
export function klDivergence(p: ArrayLike<number>, q: ArrayLike<number>): number {
  if (p.length !== q.length) throw new RangeError(`logits differ in length: ${p.length} vs ${q.length}`);
  const lp = logSoftmax(p);
  const lq = logSoftmax(q);
  let kl = 0;
  for (let i = 0; i < lp.length; i++) {
    const pi = Math.exp(lp[i]!);
    if (pi > 0) kl += pi * (lp[i]! - lq[i]!);
  }
  // KL is never negative; rounding can leave -1e-17 for near-identical inputs.
  return Math.max(0, kl);
}

/** What a run produced that scoring reads (a Generation has all of it). */
export interface RunOutput {
  text: string;
  tokens: readonly number[];
  firstLogits: ArrayLike<number>;
}

export interface CaseScore {
  correct: boolean;
  answersFound: number;
  /** The same generated token ids as full attention. */
  sameTokensAsFull: boolean;
  /** Leading generated tokens shared with full attention. */
  commonPrefix: number;
  /** KL(full || this) of the first generated token, in nats. */
  klFromFull: number;
  /** The same most likely first token as full attention. */
  sameTop1AsFull: boolean;
}

export function scoreCase(run: RunOutput, full: RunOutput, answers: readonly string[]): CaseScore {
  const found = answersFound(run.text, answers);
  const commonPrefix = agreeingPrefix(run.tokens, full.tokens);
  return {
    correct: found === answers.length,
    answersFound: found,
    sameTokensAsFull: commonPrefix === run.tokens.length && commonPrefix === full.tokens.length,
    commonPrefix,
    klFromFull: klDivergence(full.firstLogits, run.firstLogits),
    sameTop1AsFull: argmax(run.firstLogits) === argmax(full.firstLogits),
  };
}

/** One case run with one strategy on some hosts, scored. */
export interface EvalRecord extends CaseScore {
  caseId: string;
  task: TaskName;
  length: number;
  depth: number;
  strategy: Strategy;
  hosts: number;
  /** What a correct output contains. */
  answers: string[];
  text: string;
  tokens: number[];
  /** Prompt tokens as the engine saw them (prefix + document + query). */
  promptTokens: number;
  /** The slowest host's own prefill work (Generation.timings.prefillMs). */
  prefillMs: number;
  prefillWallMs: number;
}

/** One (length, strategy, hosts) cell of the suite. */
export interface CellSummary {
  length: number;
  strategy: Strategy;
  hosts: number;
  cases: number;
  accuracy: number;
  /** Fraction of cases generating exactly full attention's tokens. */
  agreement: number;
  meanCommonPrefix: number;
  meanKl: number;
  maxKl: number;
  /** Fraction of cases whose first token is full attention's. */
  top1Agreement: number;
  meanPrefillMs: number;
  meanPrefillWallMs: number;
  /** Cases full attention answered that this cell did not. */
  lostVsFull: number;
  accuracyByTask: Partial<Record<TaskName, number>>;
}

const mean = (xs: readonly number[]) => (xs.length === 0 ? 0 : xs.reduce((a, b) => a + b, 0) / xs.length);
const rate = (xs: readonly boolean[]) => mean(xs.map(Number));

/** Cells in the order their first record appears. */
export function summarizeCells(records: readonly EvalRecord[]): CellSummary[] {
  const cells = new Map<string, EvalRecord[]>();
  for (const r of records) {
    const key = `${r.length}/${r.strategy}/${r.hosts}`;
    const cell = cells.get(key);
    if (cell) cell.push(r);
    else cells.set(key, [r]);
  }
  const lost = new Set(lostAgainstFull(records));
  return [...cells.values()].map((rs) => {
    const first = rs[0]!;
    const byTask: Partial<Record<TaskName, number>> = {};
    for (const task of new Set(rs.map((r) => r.task))) byTask[task] = rate(rs.filter((r) => r.task === task).map((r) => r.correct));
    return {
      length: first.length,
      strategy: first.strategy,
      hosts: first.hosts,
      cases: rs.length,
      accuracy: rate(rs.map((r) => r.correct)),
      agreement: rate(rs.map((r) => r.sameTokensAsFull)),
      meanCommonPrefix: mean(rs.map((r) => r.commonPrefix)),
      meanKl: mean(rs.map((r) => r.klFromFull)),
      maxKl: Math.max(...rs.map((r) => r.klFromFull)),
      top1Agreement: rate(rs.map((r) => r.sameTop1AsFull)),
      meanPrefillMs: mean(rs.map((r) => r.prefillMs)),
      meanPrefillWallMs: mean(rs.map((r) => r.prefillWallMs)),
      lostVsFull: rs.filter((r) => lost.has(r)).length,
      accuracyByTask: byTask,
    };
  });
}

/** Records where full attention answered correctly and this run did not: what a CI gate checks. */
export function lostAgainstFull(records: readonly EvalRecord[]): EvalRecord[] {
  const fullCorrect = new Set(records.filter((r) => r.strategy === "full" && r.correct).map((r) => r.caseId));
  return records.filter((r) => r.strategy !== "full" && fullCorrect.has(r.caseId) && !r.correct);
}
