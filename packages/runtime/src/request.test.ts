// The strategy lists agree: the engine's (request.ts) is the one list; the protocol's is the
// same list written out (it imports nothing of ours); the planner's is what it models, which
// is every strategy the engine runs (in its own order).
import { readFileSync } from "node:fs";
import { STRATEGIES as PROTOCOL_STRATEGIES } from "@apb/protocol";
import { describe, expect, it } from "vitest";
import { STRATEGIES } from "./request.js";

/**
 * The planner's STRATEGIES, read from its source: the runtime does not depend on the planner
 * (nor should it, for one test), and a stale build would hide a change.
 */
function plannerStrategies(): string[] {
  const file = new URL("../../planner/src/schema.ts", import.meta.url);
  const list = /export const STRATEGIES = \[([^\]]*)\] as const;/.exec(readFileSync(file, "utf8"));
  if (!list) throw new Error("packages/planner/src/schema.ts no longer writes `export const STRATEGIES = [...] as const;`");
  return [...list[1]!.matchAll(/"([^"]+)"/g)].map((m) => m[1]!);
}

describe("the strategy lists", () => {
  it("the protocol's is the engine's, in the same order (it is what a job may ask the hosts to run)", () => {
    expect([...PROTOCOL_STRATEGIES]).toEqual([...STRATEGIES]);
  });

  it("the planner's is the engine's: the engine runs every strategy the planner lays out", () => {
    expect(plannerStrategies().sort()).toEqual([...STRATEGIES].sort());
    expect(STRATEGIES as readonly string[]).toContain("ulysses");
  });
});
