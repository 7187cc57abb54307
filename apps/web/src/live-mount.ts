// The live view (src/live/, written separately) in the page's #live section: it predicts a
// running job's plan with the page's planner, for the model and hardware the form holds.
import type { Plan, Planner, PlanRequest } from "@apb/planner";
import type { JobSummary } from "@apb/protocol";
import { mountLiveView } from "./live/view.js";

export interface PlanContext {
  planner: Planner;
  model: PlanRequest["model"];
  hardware?: PlanRequest["hardware"];
}

/** The plan request for a job the coordinator runs: its sizes and settings, the page's model and hardware. */
export function requestForJob(job: JobSummary, model: PlanRequest["model"], hardware: PlanRequest["hardware"]): PlanRequest {
  return {
    model,
    hardware,
    contextTokens: job.contextTokens,
    queryTokens: job.queryTokens,
    prefixTokens: job.prefixTokens,
    strategy: job.strategy,
    hosts: job.hosts,
    ...(job.anchorTokens === null ? {} : { anchorTokens: job.anchorTokens }),
    ...(job.passingTokens === null ? {} : { passingTokens: job.passingTokens }),
    ...(job.balanced === null ? {} : { balanced: job.balanced }),
    ...(job.scorer === null ? {} : { scorer: job.scorer }),
  };
}

export function mountLive(element: HTMLElement, context: () => PlanContext | null): void {
  mountLiveView(element, {
    planFor(job: JobSummary): Promise<Plan> | null {
      const c = context();
      if (!c) return null;
      // A refusal becomes a rejected promise, which the view shows as the planner's message.
      return new Promise<Plan>((resolve) => resolve(c.planner.plan(requestForJob(job, c.model, c.hardware))));
    },
  });
}
