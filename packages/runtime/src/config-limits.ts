// Sizes a real checkpoint cannot exceed, checked before anything is allocated from them: a
// config.json that claims a billion layers is refused at once instead of building a billion
// layers' tensor list until the heap runs out. The numbers are the planner's input bounds
// (the same in crates/apb-plan/src/input.rs), so a model the runtime opens is one the planner
// can lay out.
import { LIMITS, MAX_TOKENS } from "@apb/planner";
import type { EngineConfig } from "./config.js";
import { RuntimeError } from "./errors.js";

export const CONFIG_LIMITS = {
  layers: LIMITS.layers,
  hidden: LIMITS.hidden,
  heads: LIMITS.heads,
  kvHeads: LIMITS.heads,
  headDim: LIMITS.headDim,
  intermediate: LIMITS.intermediate,
  vocab: LIMITS.vocab,
  /** Positions are token indices. */
  maxPositions: MAX_TOKENS,
} as const;

export type LimitedField = keyof typeof CONFIG_LIMITS;

/** Throws OUT_OF_RANGE at the first field over its limit; `fieldName` gives its name in the file. */
export function checkConfigLimits(config: EngineConfig, source: string, fieldName: (field: LimitedField) => string): void {
  for (const field of Object.keys(CONFIG_LIMITS) as LimitedField[]) {
    const value = config[field];
    const limit = CONFIG_LIMITS[field];
    if (value > limit) {
      const name = fieldName(field);
      throw new RuntimeError({
        code: "OUT_OF_RANGE",
        path: name,
        message: `${source}: ${name} is ${value}, over the largest the engine takes (${limit}); no real model is this large, so the file is corrupt or not this model's: fix ${name} or re-download the file`,
      });
    }
  }
}
