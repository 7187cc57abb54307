import { Planner } from "@apb/planner";
import { describe, expect, it } from "vitest";
import { requestForJob } from "./live-mount.js";

describe("the live view's predictions", () => {
  const job = {
    contextTokens: 4096,
    queryTokens: 16,
    prefixTokens: 1,
    strategy: "apb" as const,
    hosts: 2,
    anchorTokens: null,
    passingTokens: 256,
    balanced: null,
    scorer: "query" as const,
    maxTokens: 8,
  };

  it("plan a job's sizes and settings with the page's model and hardware, leaving unset ones to the planner", async () => {
    const request = requestForJob(job, "llama-3.1-8b", "h100-ib");
    expect(request).toEqual({
      model: "llama-3.1-8b",
      hardware: "h100-ib",
      contextTokens: 4096,
      queryTokens: 16,
      prefixTokens: 1,
      strategy: "apb",
      hosts: 2,
      passingTokens: 256,
      scorer: "query",
    });
    const plan = (await Planner.create()).plan(request);
    expect(plan.hostPlans).toHaveLength(2);
    expect(plan.passingTokens).toBe(256);
    expect(plan.anchorTokens).toBe(512); // the planner's default: a quarter of the block
  });
});
