// The suite's tasks, after RULER's retrieval and tracing tasks (Hsieh et al., 2024): each case
// is a long filler document with needles in it, a question an instruct model can answer from
// them, and the strings a correct answer contains. Every case is a pure function of the seed.
import { buildDocument, type CountTokens, type Needle, type PlacedNeedle } from "./document.js";
import { createRng, mixSeed, type Rng } from "./prng.js";
import { KEY_ADJECTIVES, KEY_NOUNS, VALUE_WORDS } from "./words.js";

export const TASKS = ["needle-number", "needle-word", "needle-uuid", "multi-key", "multi-value", "multi-query", "variable-tracking"] as const;
export type TaskName = (typeof TASKS)[number];

/** One needle, one question: the tasks to check "finds the needle wherever full attention does". */
export const NEEDLE_TASKS = ["needle-number", "needle-word", "needle-uuid"] as const satisfies readonly TaskName[];

export interface EvalCase {
  id: string;
  task: TaskName;
  /** Target document length in the model's tokens. */
  length: number;
  /** Where the needle the question is about sits (0 start .. 1 end). */
  depth: number;
  document: string;
  /** Tokens of `document` as measured (within a few of `length`). */
  documentTokens: number;
  query: string;
  /** The start of the answer, after the assistant header (RULER's answer prefix): the model
   * continues it with the value rather than restating the question. */
  answerPrefix: string;
  /** Every one must appear in the output (case-insensitive) for the case to count as correct. */
  answers: string[];
  /** All needles, the question's first; offsets are into `document`. */
  needles: PlacedNeedle[];
  /** Enough new tokens for a complete answer. */
  maxTokens: number;
}

interface TaskText {
  needles: Needle[];
  query: string;
  answerPrefix: string;
  answers: string[];
}

const number7 = (r: Rng) => String(r.int(1_000_000, 9_999_999));
const hex = (r: Rng, n: number) => Array.from({ length: n }, () => r.int(0, 15).toString(16)).join("");
const uuid = (r: Rng) => [8, 4, 4, 4, 12].map((n) => hex(r, n)).join("-");

/** `count` distinct values (a repeated one would make a distractor carry the answer). */
function distinct(r: Rng, count: number, make: (r: Rng) => string): string[] {
  const out = new Set<string>();
  while (out.size < count) out.add(make(r));
  return [...out];
}

function keys(r: Rng, count: number): string[] {
  return distinct(r, count, (q) => `${q.pick(KEY_ADJECTIVES)}-${q.pick(KEY_NOUNS)}`);
}

const KINDS = {
  number: { noun: "number", make: number7 },
  word: { noun: "word", make: (r: Rng) => r.pick(VALUE_WORDS) },
  uuid: { noun: "uuid", make: uuid },
} as const;

function needleText(kind: keyof typeof KINDS, key: string, value: string): string {
  return `Remember this: the special magic ${KINDS[kind].noun} for ${key} is ${value}.`;
}

function single(kind: keyof typeof KINDS): (r: Rng, depth: number) => TaskText {
  return (r, depth) => {
    const [key] = keys(r, 1) as [string];
    const value = KINDS[kind].make(r);
    const noun = KINDS[kind].noun;
    return {
      needles: [{ text: needleText(kind, key, value), depth }],
      query: `What is the special magic ${noun} for ${key} mentioned in the text above? Answer with the ${noun} only.`,
      answerPrefix: `The special magic ${noun} for ${key} mentioned in the text is`,
      answers: [value],
    };
  };
}

/** One key asked among distractor keys, each with its own number. */
function multiKey(r: Rng, depth: number): TaskText {
  const ks = keys(r, 4);
  const values = distinct(r, 4, number7);
  return {
    needles: ks.map((k, i) => ({ text: needleText("number", k, values[i]!), depth: i === 0 ? depth : r.next() })),
    query: `What is the special magic number for ${ks[0]} mentioned in the text above? Answer with the number only.`,
    answerPrefix: `The special magic number for ${ks[0]} mentioned in the text is`,
    answers: [values[0]!],
  };
}

/** One key with several numbers; all of them must be given. */
function multiValue(r: Rng, depth: number): TaskText {
  const [key] = keys(r, 1) as [string];
  const values = distinct(r, 4, number7);
  return {
    needles: values.map((v, i) => ({ text: `One of the special magic numbers for ${key} is ${v}.`, depth: i === 0 ? depth : r.next() })),
    query: `What are all the special magic numbers for ${key} mentioned in the text above? List every one of them.`,
    answerPrefix: `The special magic numbers for ${key} mentioned in the text are`,
    answers: values,
  };
}

/** Several keys asked at once (one more key in the text is not asked about). */
function multiQuery(r: Rng, depth: number): TaskText {
  const ks = keys(r, 4);
  const values = distinct(r, 4, number7);
  const asked = ks.slice(0, 3);
  return {
    needles: ks.map((k, i) => ({ text: needleText("number", k, values[i]!), depth: i === 0 ? depth : r.next() })),
    query: `What are the special magic numbers for ${asked[0]}, ${asked[1]} and ${asked[2]} mentioned in the text above? Give each key with its number.`,
    answerPrefix: `The special magic numbers for ${asked[0]}, ${asked[1]} and ${asked[2]} mentioned in the text are`,
    answers: values.slice(0, 3),
  };
}

const varName = (r: Rng) => Array.from({ length: 5 }, () => String.fromCharCode(65 + r.int(0, 25))).join("");

/** A chain VAR A = value, VAR B = VAR A, ... (depths ascending, so it reads in order). */
function chain(names: readonly string[], value: string, depths: readonly number[]): Needle[] {
  return names.map((name, i) => ({ text: i === 0 ? `VAR ${name} = ${value}.` : `VAR ${name} = VAR ${names[i - 1]}.`, depth: depths[i]! }));
}

/** Which variables end up holding a value: follow one chain of assignments past another. */
function variableTracking(r: Rng, depth: number): TaskText {
  const names = distinct(r, 10, varName);
  const [value, other] = distinct(r, 2, (q) => String(q.int(10_000, 99_999))) as [string, string];
  const sorted = (n: number, from: number) => [from, ...Array.from({ length: n - 1 }, () => from + (1 - from) * r.next()).sort((x, y) => x - y)];
  const asked = names.slice(0, 5);
  return {
    needles: [...chain(asked, value, sorted(5, depth)), ...chain(names.slice(5), other, sorted(5, r.next() * 0.5))],
    query: `Which variables are assigned the value ${value}, directly or through other variables, in the text above? List every variable name.`,
    answerPrefix: `The variables assigned the value ${value} are`,
    answers: asked,
  };
}

// New-token budgets: with the answer prefix the model goes straight to the value(s); a
// 7-digit number is 7 tokens (SmolLM2 splits digits), a uuid 30-odd. Greedy runs stop at the
// end-of-turn token, so a generous budget costs little when the model answers.
const TASK_TEXT: Record<TaskName, { make: (r: Rng, depth: number) => TaskText; maxTokens: number }> = {
  "needle-number": { make: single("number"), maxTokens: 16 },
  "needle-word": { make: single("word"), maxTokens: 16 },
  "needle-uuid": { make: single("uuid"), maxTokens: 48 },
  "multi-key": { make: multiKey, maxTokens: 16 },
  "multi-value": { make: multiValue, maxTokens: 64 },
  "multi-query": { make: multiQuery, maxTokens: 96 },
  "variable-tracking": { make: variableTracking, maxTokens: 48 },
};

export interface CaseSpec {
  task: TaskName;
  length: number;
  depth: number;
  seed: number;
  countTokens: CountTokens;
  id?: string;
}

export function generateCase(s: CaseSpec): EvalCase {
  const rng = createRng(s.seed);
  const text = TASK_TEXT[s.task].make(rng, s.depth);
  const doc = buildDocument({ targetTokens: s.length, needles: text.needles, rng, countTokens: s.countTokens });
  return {
    id: s.id ?? `${s.task}@${s.length}`,
    task: s.task,
    length: s.length,
    depth: s.depth,
    document: doc.text,
    documentTokens: doc.tokens,
    query: text.query,
    answerPrefix: text.answerPrefix,
    answers: text.answers,
    needles: doc.needles,
    maxTokens: TASK_TEXT[s.task].maxTokens,
  };
}

export interface CasesOptions {
  length: number;
  /** Cases to make; tasks take turns (case i is tasks[i % tasks.length]). */
  count: number;
  seed: number;
  tasks?: readonly TaskName[];
  /** Depths of the asked needle, cycled per task; default: a task's n cases at (k + 0.5) / n. */
  depths?: readonly number[];
  countTokens: CountTokens;
}

/** The cases of one length. A case depends on (seed, length, task, its number within the task). */
export function generateCases(o: CasesOptions): EvalCase[] {
  const tasks = o.tasks ?? TASKS;
  const perTask = tasks.map((_, t) => Math.ceil((o.count - t) / tasks.length));
  return Array.from({ length: o.count }, (_, i) => {
    const t = i % tasks.length;
    const task = tasks[t]!;
    const k = Math.floor(i / tasks.length);
    const depth = o.depths && o.depths.length > 0 ? o.depths[k % o.depths.length]! : (k + 0.5) / perTask[t]!;
    const seed = mixSeed(o.seed, o.length, TASKS.indexOf(task), k);
    return generateCase({ task, length: o.length, depth, seed, countTokens: o.countTokens, id: `${task}@${o.length}#${k}` });
  });
}
