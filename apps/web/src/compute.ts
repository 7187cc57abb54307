// Everything the page draws for one request: the chosen strategy's plan, a plan per strategy
// (for the timelines), the comparison table and the recommendation. Only the chosen plan's
// failure is an input error; the others are shown where they would have been drawn.
import { PlannerError, type Comparison, type Plan, type Planner, type PlanRequest, type Recommendation, type Strategy } from "@apb/planner";
import { isAnchored } from "./request.js";

export interface Outcome {
  request: PlanRequest & { hosts: number; contextTokens: number };
  plan: Plan;
  /** The planner's anchor and passing defaults for this input (the form's placeholders). */
  defaults: { anchorTokens: number; passingTokens: number };
  comparison: Comparison;
  plans: { strategy: Strategy; plan: Plan | null; error: string | null }[];
  /** null: not searched yet (large groups search on request: the search grows faster than the hosts). */
  recommendation: Recommendation | { error: string } | null;
}

/** Up to this many hosts recommend runs with every change (about 0.1 s at 128 hosts); above, on request. */
export const AUTO_RECOMMEND_HOSTS = 128;

const MAX_RECOMMEND_HOSTS = 1024;

/** Throws the chosen plan's PlannerError; anything else failing is kept in the outcome. */
export function compute(planner: Planner, request: Outcome["request"]): Outcome {
  const plan = planner.plan(request);
  const { anchorTokens, passingTokens, ...withoutSettings } = request;
  const defaults =
    anchorTokens === undefined && passingTokens === undefined
      ? { anchorTokens: plan.anchorTokens, passingTokens: plan.passingTokens }
      : tryOr(() => planner.plan(withoutSettings), plan);
  const comparison = planner.compare(request);
  const plans = comparison.strategies.map((row) => {
    if ("error" in row) return { strategy: row.strategy, plan: null, error: row.error.message };
    if (row.strategy === plan.strategy) return { strategy: row.strategy, plan, error: null };
    try {
      const { balanced, ...rest } = request;
      const forRow = { ...rest, strategy: row.strategy, ...(isAnchored(row.strategy) && balanced !== undefined ? { balanced } : {}) };
      return { strategy: row.strategy, plan: planner.plan(forRow), error: null };
    } catch (cause) {
      return { strategy: row.strategy, plan: null, error: messageOf(cause) };
    }
  });
  const recommendation = request.hosts <= AUTO_RECOMMEND_HOSTS ? recommendFor(planner, request) : null;
  return {
    request,
    plan,
    defaults: { anchorTokens: defaults.anchorTokens, passingTokens: defaults.passingTokens },
    comparison,
    plans,
    recommendation,
  };
}

/** recommend over up to the form's hosts, for the same model, hardware and lengths. */
export function recommendFor(planner: Planner, request: Outcome["request"]): Recommendation | { error: string } {
  try {
    return planner.recommend({
      model: request.model,
      hardware: request.hardware,
      contextTokens: request.contextTokens,
      queryTokens: request.queryTokens,
      maxHosts: Math.min(request.hosts, MAX_RECOMMEND_HOSTS),
      allowBalanced: true,
    });
  } catch (cause) {
    return { error: messageOf(cause) };
  }
}

function tryOr<T>(f: () => T, fallback: T): T {
  try {
    return f();
  } catch {
    return fallback;
  }
}

function messageOf(cause: unknown): string {
  return cause instanceof PlannerError || cause instanceof Error ? cause.message : String(cause);
}
