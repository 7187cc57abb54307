// @apb/planner: APB layouts and costs for every strategy, in Node and in the browser.
export { Planner, defaultPlanner, resolveHardware, resolveModel } from "./planner.js";
export { PLANNER_ERROR_CODES, PlannerError, type ErrorCode, type ErrorData } from "./errors.js";
export { architectureOf, hfConfigSchema, hfSizes, modelFromHfConfig, MODEL_TYPES, type Architecture, type HfConfig, type HfModel, type HfSizes } from "./hf-config.js";
export { LIMITS, MAX_HOSTS, MAX_TOKENS } from "./limits.js";
export { closestHardwarePreset, type MeasuredRates } from "./closest-preset.js";
export {
  checkHardwareProfileFile,
  HARDWARE_FIELDS,
  hardwareProfileFileSchema,
  readHardwareProfileFile,
  type HardwareField,
  type HardwareProfileFile,
} from "./profile-file.js";
export {
  DEFAULT_HARDWARE,
  HARDWARE_PRESETS,
  MODEL_PRESETS,
  type HardwarePresetName,
  type ModelPreset,
  type ModelPresetName,
} from "./presets.js";
export {
  SCORERS,
  STRATEGIES,
  type CompareRequest,
  type HardwareProfile,
  type ModelShape,
  type PlanRequest,
  type RecommendRequest,
  type Strategy,
} from "./schema.js";
export type * from "./types.js";

import { defaultPlanner } from "./planner.js";
import type { CompareRequest, PlanRequest, RecommendRequest } from "./schema.js";
import type { Comparison, Plan, Recommendation } from "./types.js";

/** Plans one strategy: per-host layout, costs and predicted times. */
export async function plan(request: PlanRequest): Promise<Plan> {
  return (await defaultPlanner()).plan(request);
}

/** Plans every strategy (or those listed) on the same input, with speedups over full attention. */
export async function compare(request: CompareRequest): Promise<Comparison> {
  return (await defaultPlanner()).compare(request);
}

/** Searches hosts and block settings for the least predicted time to first token that fits. */
export async function recommend(request: RecommendRequest): Promise<Recommendation> {
  return (await defaultPlanner()).recommend(request);
}
