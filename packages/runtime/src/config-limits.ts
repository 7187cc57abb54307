// Sizes a real checkpoint cannot exceed, checked before anything is allocated from them: a
// config.json that claims a billion layers is refused at once instead of building a billion
// layers' tensor list until the heap runs out. The numbers are the planner's input bounds
// (packages/planner/src/limits.ts, crates/apb-plan/src/input.rs; config-limits.test.ts holds
// them equal), so a model the runtime opens is one the planner can lay out.
import type { EngineConfig } from "./config.js";
import { RuntimeError } from "./errors.js";

export const CONFIG_LIMITS = {
  layers: 1024,
  hidden: 1_048_576,
  heads: 1024,
  kvHeads: 1024,
  headDim: 1024,
  intermediate: 16_777_216,
  vocab: 16_777_216,
  /** The planner's MAX_TOKENS: positions are token indices. */
  maxPositions: 2_147_483_647,
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
