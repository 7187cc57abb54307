// A small needle suite for CI on a real model: does an approximate strategy find the needle
// wherever full attention does? Small on purpose: 18 generations by default (one case per
// needle kind at depth 0.5, at 1K and 2K tokens, full + APB + Star on 4 hosts).
import type { EvalOptions } from "./options.js";
import { runEval, type EvalModel, type EvalResult } from "./run.js";
import { lostAgainstFull, type EvalRecord } from "./score.js";
import { NEEDLE_TASKS } from "./tasks.js";

export type NeedleCheckOptions = Partial<EvalOptions>;

export async function needleCheck(model: EvalModel, options: NeedleCheckOptions = {}): Promise<{ result: EvalResult; lost: EvalRecord[] }> {
  const result = await runEval(model, {
    lengths: [1024, 2048],
    strategies: ["full", "apb", "star"],
    hosts: [4],
    // One case per needle kind, at depth 0.5: past the first block, where APB and Star
    // approximate (more cases spread over more depths).
    tasks: [...NEEDLE_TASKS],
    cases: NEEDLE_TASKS.length,
    ...options,
  });
  return { result, lost: lostAgainstFull(result.records) };
}
