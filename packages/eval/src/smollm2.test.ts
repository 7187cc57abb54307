// APB keeps the answers on a real model: SmolLM2-135M-Instruct (its Q4_1 GGUF, fetched into
// the models cache on first use) reads needle documents with full attention and with APB and
// Star over 4 hosts, greedy. The needles sit at depths inside the middle hosts' blocks, where
// only what APB passes on (and nothing, for Star) carries them to the query. Full attention
// must find most of them (else the check would compare nothing), and APB and Star must find
// every needle full attention finds.
import { loadModel, type Model } from "@apb/runtime";
import { smollm2ModelFile } from "@apb/runtime/testing";
import { beforeAll, describe, expect, it } from "vitest";
import { needleCheck } from "./presets.js";

let model: Model;
beforeAll(async () => {
  model = await loadModel(await smollm2ModelFile());
}, 600_000);

describe("SmolLM2-135M-Instruct, ~1.5K-token documents, 4 hosts", () => {
  it("APB and Star find the needle wherever full attention does", async () => {
    const { result, lost } = await needleCheck(model, {
      lengths: [1536],
      tasks: ["needle-number", "needle-uuid"],
      depths: [0.3, 0.6],
      cases: 4,
      seed: 2026,
    });
    const full = result.records.filter((r) => r.strategy === "full");
    expect(full).toHaveLength(4);
    expect(full.filter((r) => r.correct).length).toBeGreaterThanOrEqual(3);
    expect(lost.map((r) => `${r.strategy} lost ${r.caseId}: ${JSON.stringify(r.text)}`)).toEqual([]);
  }, 1_800_000);
});
