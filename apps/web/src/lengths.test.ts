import { describe, expect, it } from "vitest";
import { formatLength, parseCount, parseFigure, parseLength } from "./lengths.js";

describe("parseLength", () => {
  it("reads plain numbers, separators and K/M suffixes (K = 1024)", () => {
    expect(parseLength("131072")).toEqual({ ok: true, value: 131072 });
    expect(parseLength("131,072")).toEqual({ ok: true, value: 131072 });
    expect(parseLength("131_072")).toEqual({ ok: true, value: 131072 });
    expect(parseLength(" 128K ")).toEqual({ ok: true, value: 131072 });
    expect(parseLength("128k")).toEqual({ ok: true, value: 131072 });
    expect(parseLength("1M")).toEqual({ ok: true, value: 1048576 });
    expect(parseLength("1.5K")).toEqual({ ok: true, value: 1536 });
    expect(parseLength("0.5m")).toEqual({ ok: true, value: 524288 });
    expect(parseLength("0")).toEqual({ ok: true, value: 0 });
  });

  it("refuses what is not a whole number of tokens, saying why", () => {
    const bad = (text: string, min?: number) => {
      const parsed = parseLength(text, min);
      expect(parsed.ok).toBe(false);
      return parsed.ok ? "" : parsed.message;
    };
    expect(bad("abc")).toContain('"abc" is not a number of tokens');
    expect(bad("")).toContain("needs a number of tokens");
    expect(bad("12G")).toContain("not a number of tokens");
    expect(bad("-5")).toContain("not a number of tokens");
    expect(bad("1.3K")).toContain("not a whole number");
    expect(bad("0", 1)).toBe("must be at least 1 token, got 0");
    expect(bad("99999999999M")).toContain("too large");
  });

  it("round-trips through formatLength", () => {
    for (const n of [1, 127, 1024, 5000, 131072, 200000, 1048576, 3 * 1048576]) {
      expect(parseLength(formatLength(n))).toEqual({ ok: true, value: n });
    }
    expect(formatLength(131072)).toBe("128K");
    expect(formatLength(1048576)).toBe("1M");
    expect(formatLength(200000)).toBe("200,000");
  });
});

describe("parseCount and parseFigure", () => {
  it("read hosts and hardware figures", () => {
    expect(parseCount("8")).toEqual({ ok: true, value: 8 });
    expect(parseCount("0")).toEqual({ ok: false, message: "must be at least 1, got 0" });
    expect(parseCount("2.5").ok).toBe(false);
    expect(parseFigure("45")).toEqual({ ok: true, value: 45 });
    expect(parseFigure("0.5")).toEqual({ ok: true, value: 0.5 });
    expect(parseFigure("0")).toEqual({ ok: false, message: "must be greater than 0" });
    expect(parseFigure("fast")).toEqual({ ok: false, message: '"fast" is not a number' });
  });
});
