// @apb/eval: a RULER-style synthetic long-context suite (needles, multi-key/value/query,
// variable tracking) that runs every strategy against full attention on the same prompts.
export { runEval, type EvalModel, type EvalResult } from "./run.js";
export { parseEvalOptions, checkLengths, DEFAULT_STRATEGIES, MIN_LENGTH, type EvalOptions, type EvalProgress, type SuiteSettings } from "./options.js";
export { generateCase, generateCases, NEEDLE_TASKS, TASKS, type CaseSpec, type CasesOptions, type EvalCase, type TaskName } from "./tasks.js";
export { buildDocument, type BuiltDocument, type CountTokens, type Needle, type PlacedNeedle } from "./document.js";
export {
  answersFound,
  isCorrect,
  klDivergence,
  logSoftmax,
  lostAgainstFull,
  scoreCase,
  summarizeCells,
  type CaseScore,
  type CellSummary,
  type EvalRecord,
  type RunOutput,
} from "./score.js";
export { needleCheck, type NeedleCheckOptions } from "./presets.js";
