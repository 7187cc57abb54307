// runEval's options, checked with zod before anything runs: a typo in a long suite should fail
// in a second, not after an hour of prefill. Errors are RuntimeErrors (code, field, one line).
import { RuntimeError, STRATEGIES, type Strategy } from "@apb/runtime";
import { z } from "zod";
import type { CellSummary, EvalRecord } from "./score.js";
import { TASKS, type TaskName } from "./tasks.js";

/** Shortest document a case is made at: room for the needles and some filler around them. */
export const MIN_LENGTH = 128;
/** full, apb, star and ring: the strategies the suite compares by default. */
export const DEFAULT_STRATEGIES: readonly Strategy[] = ["full", "apb", "star", "ring"];

export type EvalProgress =
  | { kind: "cases"; done: number; total: number; length: number; count: number }
  | { kind: "case"; done: number; total: number; record: EvalRecord }
  | { kind: "cell"; done: number; total: number; cell: CellSummary };

export interface EvalOptions {
  /** Document lengths in the model's tokens. */
  lengths: number[];
  /** Default full, apb, star, ring. Full always runs (it is the reference). */
  strategies?: Strategy[];
  /** Host counts for every strategy but full (default [4]). */
  hosts?: number[];
  /** Cases per cell (default 7: one per task). */
  cases?: number;
  seed?: number;
  /** Default all of TASKS. */
  tasks?: TaskName[];
  /** Depths of the asked needle (0..1), cycled per task; default spread evenly. */
  depths?: number[];
  /** New tokens per case; default enough for each task's answer. */
  maxTokens?: number;
  /** APB's anchor length (apb only; default the planner's l_b/4). */
  anchorTokens?: number;
  /** APB's passing length (apb only); "all" passes every key of a block, which with anchor 0
   * makes APB exact: a check that the harness itself agrees with full attention. */
  passingTokens?: number | "all";
  /** Balanced block sizes for apb and star (the planner's `balanced`: hosts that attend to
   * more keys hold shorter blocks, so all finish together), or false for the paper's even
   * split. Unset: the runtime's default (apb balanced, star even), and the even split with
   * passingTokens "all", which is exact only then. */
  balanced?: boolean;
  /** Shown in results (default the model directory's name). */
  modelName?: string;
  onProgress?: (event: EvalProgress) => void;
  signal?: AbortSignal;
}

const got = (input: unknown) => `; got ${JSON.stringify(input) ?? String(input)}`;
const whole = (what: string, min: number, max: number) =>
  z
    .number({ error: (i) => `must be ${what}${got(i.input)}` })
    .int({ error: (i) => `must be ${what}${got(i.input)}` })
    .min(min, { error: (i) => `must be ${what}${got(i.input)}` })
    .max(max, { error: (i) => `must be ${what}${got(i.input)}` });
const listOf = <T extends z.ZodType>(item: T) => z.array(item, { error: "must be a list" }).min(1, { error: "must not be empty" });
const oneOf = <T extends readonly [string, ...string[]]>(values: T) => z.enum(values, { error: (i) => `must be among ${values.join(", ")}${got(i.input)}` });

const schema = z.strictObject({
  lengths: listOf(whole(`whole numbers of tokens >= ${MIN_LENGTH}`, MIN_LENGTH, 2 ** 31 - 1)),
  strategies: listOf(oneOf(STRATEGIES)).default([...DEFAULT_STRATEGIES]),
  hosts: listOf(whole("whole numbers >= 1 (and at most 4096)", 1, 4096)).default([4]),
  cases: whole("a whole number of cases per cell, 1 to 100000", 1, 100_000).default(TASKS.length),
  seed: whole("a whole number from 0 to 4294967295", 0, 2 ** 32 - 1).default(0),
  tasks: listOf(oneOf(TASKS)).default([...TASKS]),
  depths: z.array(z.number({ error: "must be numbers from 0 to 1" }).min(0, { error: (i) => `must be from 0 to 1${got(i.input)}` }).max(1, { error: (i) => `must be from 0 to 1${got(i.input)}` })).optional(),
  maxTokens: whole("a whole number of tokens, 1 to 100000", 1, 100_000).optional(),
  anchorTokens: whole("a whole number of tokens >= 0", 0, 2 ** 31 - 1).optional(),
  passingTokens: z.union([whole("a whole number of tokens >= 0", 0, 2 ** 31 - 1), z.literal("all")], { error: "must be a whole number of tokens or \"all\"" }).optional(),
  balanced: z.boolean({ error: (i) => `must be true or false${got(i.input)}` }).optional(),
  modelName: z.string().optional(),
  onProgress: z.function().optional(),
  signal: z.instanceof(AbortSignal).optional(),
});

/** The options with defaults filled in, lists deduplicated (order kept). */
export interface SuiteSettings {
  lengths: number[];
  strategies: Strategy[];
  hosts: number[];
  cases: number;
  seed: number;
  tasks: TaskName[];
  depths: number[] | null;
  maxTokens: number | null;
  anchorTokens: number | null;
  passingTokens: number | "all" | null;
  /** null: the runtime's default per strategy. */
  balanced: boolean | null;
}

const unique = <T>(xs: readonly T[]) => [...new Set(xs)];

/** Checks the options that need no model; throws RuntimeError (OUT_OF_RANGE, or UNKNOWN_FIELD; path = the option). */
export function parseEvalOptions(options: EvalOptions): SuiteSettings {
  const parsed = schema.safeParse(options);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    if (issue.code === "unrecognized_keys") {
      // The planner's code for the same condition, so every package says it one way.
      const key = issue.keys[0] ?? "";
      throw new RuntimeError({ code: "UNKNOWN_FIELD", path: key, message: `${key} is not a known option` });
    }
    const field = String(issue.path[0] ?? "options");
    throw new RuntimeError({ code: "OUT_OF_RANGE", path: field, message: `${field} ${issue.message}` });
  }
  const o = parsed.data;
  if (o.balanced === true && o.passingTokens === "all") {
    throw new RuntimeError({ code: "OUT_OF_RANGE", path: "balanced", message: 'balanced blocks with passingTokens "all" would not pass every earlier key (blocks differ in length); leave balanced unset for the even split' });
  }
  return {
    lengths: unique(o.lengths),
    strategies: unique(o.strategies),
    hosts: unique(o.hosts),
    cases: o.cases,
    seed: o.seed,
    tasks: unique(o.tasks),
    depths: o.depths ?? null,
    maxTokens: o.maxTokens ?? null,
    anchorTokens: o.anchorTokens ?? null,
    passingTokens: o.passingTokens ?? null,
    balanced: o.balanced ?? (o.passingTokens === "all" ? false : null),
  };
}

/** Lengths the model can hold: the document plus the prompt's other tokens and the answer. */
export function checkLengths(settings: SuiteSettings, maxPositions: number): void {
  const over = settings.lengths.find((l) => l >= maxPositions);
  if (over !== undefined) {
    throw new RuntimeError({
      code: "OUT_OF_RANGE",
      path: "lengths",
      message: `lengths ${over} is beyond the model's ${maxPositions} positions (the document, the query and the answer must all fit); use shorter lengths`,
    });
  }
}
