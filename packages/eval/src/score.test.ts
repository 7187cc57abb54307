// Scoring math against values worked out by hand.
import { describe, expect, it } from "vitest";
import { answersFound, isCorrect, klDivergence, logSoftmax, lostAgainstFull, scoreCase, summarizeCells, type EvalRecord } from "./score.js";

describe("answers", () => {
  it("count as found anywhere in the output, ignoring case; all are needed", () => {
    expect(answersFound("The variables are ABCDE and fghij.", ["abcde", "FGHIJ", "KLMNO"])).toBe(2);
    expect(isCorrect("Sure! It is 1234567.", ["1234567"])).toBe(true);
    expect(isCorrect("1234567 and 7654321", ["1234567", "7654321"])).toBe(true);
    expect(isCorrect("1234567", ["1234567", "7654321"])).toBe(false);
    expect(isCorrect("", ["x"])).toBe(false);
  });
});

describe("logSoftmax and klDivergence", () => {
  it("normalize in float64 without overflow", () => {
    const l = logSoftmax([1000, 1000 + Math.log(3)]);
    expect(Math.exp(l[0]!)).toBeCloseTo(0.25, 6);
    expect(Math.exp(l[1]!)).toBeCloseTo(0.75, 6);
    expect(logSoftmax([-1e30, 0])[1]).toBe(0);
  });

  it("is 0 for identical or shifted logits and matches a hand-computed value", () => {
    const p = new Float32Array([0.5, -2, 3.25, 1]);
    expect(klDivergence(p, p)).toBe(0);
    expect(klDivergence([1, 2, 3], [11, 12, 13])).toBeCloseTo(0, 12);
    // P = (1/3, 2/3), Q = (1/2, 1/2): KL = 1/3 ln(2/3) + 2/3 ln(4/3).
    const kl = klDivergence([0, Math.log(2)], [0, 0]);
    expect(kl).toBeCloseTo((1 / 3) * Math.log(2 / 3) + (2 / 3) * Math.log(4 / 3), 12);
    expect(kl).toBeCloseTo(0.0566330122651, 10);
    // Not symmetric: KL(Q || P) = 1/2 ln(3/2) + 1/2 ln(3/4).
    expect(klDivergence([0, 0], [0, Math.log(2)])).toBeCloseTo(0.5 * Math.log(1.5) + 0.5 * Math.log(0.75), 12);
    expect(() => klDivergence([0], [0, 1])).toThrow(/differ in length/);
  });
});

describe("scoreCase", () => {
  const full = { text: "It is 1234567.", tokens: [5, 6, 7, 8], firstLogits: [0, 3, 1] };

  it("agrees totally with itself", () => {
    expect(scoreCase(full, full, ["1234567"])).toEqual({ correct: true, answersFound: 1, sameTokensAsFull: true, commonPrefix: 4, klFromFull: 0, sameTop1AsFull: true });
  });

  it("measures the shared prefix, the first token's KL from full and top-1", () => {
    const other = { text: "It is 1234.", tokens: [5, 6, 9], firstLogits: [0, 1, 3] };
    const s = scoreCase(other, full, ["1234567"]);
    expect(s).toMatchObject({ correct: false, answersFound: 0, sameTokensAsFull: false, commonPrefix: 2, sameTop1AsFull: false });
    expect(s.klFromFull).toBeCloseTo(klDivergence(full.firstLogits, other.firstLogits), 15);
    // A prefix of full's tokens is not the same generation.
    expect(scoreCase({ ...full, tokens: [5, 6] }, full, []).sameTokensAsFull).toBe(false);
  });
});

function record(over: Partial<EvalRecord>): EvalRecord {
  return {
    caseId: "c0", task: "needle-number", length: 1024, depth: 0.5, strategy: "full", hosts: 1, answers: ["1234567"], text: "", tokens: [], promptTokens: 1100,
    prefillMs: 10, prefillWallMs: 12, correct: true, answersFound: 1, sameTokensAsFull: true, commonPrefix: 3, klFromFull: 0, sameTop1AsFull: true,
    ...over,
  };
}

describe("summarizeCells", () => {
  it("aggregates per (length, strategy, hosts)", () => {
    const records = [
      record({ caseId: "a" }),
      record({ caseId: "b", task: "multi-key", correct: false, prefillMs: 30 }),
      record({ caseId: "a", strategy: "apb", hosts: 4, correct: false, sameTokensAsFull: false, commonPrefix: 1, klFromFull: 0.3, sameTop1AsFull: false, prefillMs: 4 }),
      record({ caseId: "b", strategy: "apb", hosts: 4, task: "multi-key", correct: true, klFromFull: 0.1, prefillMs: 6 }),
      record({ caseId: "a", strategy: "apb", hosts: 2, klFromFull: 0.2 }),
    ];
    const cells = summarizeCells(records);
    expect(cells.map((c) => [c.strategy, c.hosts, c.cases])).toEqual([["full", 1, 2], ["apb", 4, 2], ["apb", 2, 1]]);
    expect(cells[0]).toMatchObject({ accuracy: 0.5, agreement: 1, meanKl: 0, maxKl: 0, top1Agreement: 1, meanPrefillMs: 20, lostVsFull: 0, accuracyByTask: { "needle-number": 1, "multi-key": 0 } });
    expect(cells[1]).toMatchObject({ accuracy: 0.5, agreement: 0.5, meanCommonPrefix: 2, maxKl: 0.3, top1Agreement: 0.5, meanPrefillMs: 5, lostVsFull: 1 });
    expect(cells[1]!.meanKl).toBeCloseTo(0.2, 15);
    expect(lostAgainstFull(records).map((r) => [r.caseId, r.strategy, r.hosts])).toEqual([["a", "apb", 4]]);
  });
});
