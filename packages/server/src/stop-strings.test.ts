import { describe, expect, it } from "vitest";
import { StopStrings } from "./stop-strings.js";

/** Feeds `pieces` and returns what was shown, as OpenAI's stop would cut the joined text. */
function run(stops: string[], pieces: string[]): { shown: string; done: boolean } {
  const s = new StopStrings(stops);
  let shown = "";
  for (const p of pieces) shown += s.push(p);
  shown += s.flush();
  return { shown, done: s.done };
}

/** The reference: the joined text cut before the earliest stop string. */
function reference(stops: string[], text: string): string {
  const cuts = stops.map((s) => text.indexOf(s)).filter((i) => i >= 0);
  return cuts.length ? text.slice(0, Math.min(...cuts)) : text;
}

describe("stop strings", () => {
  it("end the answer before the first one, which is not shown", () => {
    expect(run(["\n\n"], ["Paris", " is", "\n", "\nand"])).toEqual({ shown: "Paris is", done: true });
    expect(run(["END", "x"], ["a", "bEN", "Dx"])).toEqual({ shown: "ab", done: true });
  });

  it("hold back only what could start one, and show it when it does not", () => {
    const s = new StopStrings(["STOP"]);
    expect(s.push("go ST")).toBe("go ");
    expect(s.push("AR")).toBe("STAR");
    expect(s.push("S")).toBe("");
    expect(s.flush()).toBe("S");
    expect(s.done).toBe(false);
  });

  it("match the joined text however it is split, on random pieces", () => {
    let seed = 7;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let trial = 0; trial < 500; trial++) {
      const text = Array.from({ length: 1 + rand(30) }, () => "ab c\n"[rand(5)]).join("");
      const stops = Array.from({ length: 1 + rand(3) }, () => Array.from({ length: 1 + rand(3) }, () => "ab c\n"[rand(5)]).join(""));
      const pieces: string[] = [];
      for (let i = 0; i < text.length; ) {
        const n = 1 + rand(4);
        pieces.push(text.slice(i, i + n));
        i += n;
      }
      expect(run(stops, pieces).shown, JSON.stringify({ text, stops, pieces })).toBe(reference(stops, text));
    }
  });
});
