import { ApbError, type ErrorCode as AnyErrorCode, type ErrorData as AnyErrorData, errorDataFromZod } from "@apb/errors";
import type { z } from "zod";

/**
 * The codes the planner raises: the Rust planner's (crates/apb-plan/src/error.rs), from the one
 * list in @apb/errors (docs/ERRORS.md says what each means and how to fix it).
 */
export const PLANNER_ERROR_CODES = [
  "INVALID_JSON",
  "MISSING_FIELD",
  "WRONG_TYPE",
  "OUT_OF_RANGE",
  "UNKNOWN_FIELD",
  "INFEASIBLE",
  "UNKNOWN_OP",
  "INTERNAL",
] as const satisfies readonly AnyErrorCode[];

export type ErrorCode = (typeof PLANNER_ERROR_CODES)[number];

/** Errors are data: a stable code, a message that says how to fix it, and the field's path. */
export type ErrorData = AnyErrorData<ErrorCode>;

export class PlannerError extends ApbError<ErrorCode> {
  override readonly name = "PlannerError";
}

/** The first zod issue as a PlannerError naming the field; `input` tells missing from wrong. */
export function fromZod(error: z.ZodError, input: unknown): PlannerError {
  return new PlannerError(errorDataFromZod(error, input));
}
