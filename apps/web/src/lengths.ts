// Token counts as people write them: 131072, 131,072, 128K, 1M, 1.5K (K = 1024, M = 1024²).

const UNITS: Record<string, number> = { "": 1, k: 1024, m: 1024 * 1024 };

export type Parsed = { ok: true; value: number } | { ok: false; message: string };

/** Parses a token count; `min` is the least accepted (0 for the query, 1 for the context). */
export function parseLength(text: string, min = 0): Parsed {
  const trimmed = text.trim().replace(/[,_\s]/g, "");
  const match = /^(\d+(?:\.\d+)?|\.\d+)([kKmM]?)$/.exec(trimmed);
  if (!match) {
    return { ok: false, message: text.trim() === "" ? "needs a number of tokens (e.g. 128K)" : `"${text.trim()}" is not a number of tokens: write e.g. 131072, 128K or 1M` };
  }
  const value = Number(match[1]) * (UNITS[(match[2] ?? "").toLowerCase()] ?? 1);
  if (!Number.isInteger(value)) return { ok: false, message: `${text.trim()} is ${value} tokens, not a whole number` };
  if (!Number.isSafeInteger(value)) return { ok: false, message: `${text.trim()} is too large` };
  if (value < min) return { ok: false, message: `must be at least ${min} token${min === 1 ? "" : "s"}, got ${value}` };
  return { ok: true, value };
}

/** A whole number for counts that take no unit (hosts). */
export function parseCount(text: string, min = 1): Parsed {
  const trimmed = text.trim();
  if (!/^\d+$/.test(trimmed)) return { ok: false, message: trimmed === "" ? "needs a whole number" : `"${trimmed}" is not a whole number` };
  const value = Number(trimmed);
  if (value < min) return { ok: false, message: `must be at least ${min}, got ${value}` };
  return { ok: true, value };
}

/** A positive decimal figure (custom hardware). */
export function parseFigure(text: string): Parsed {
  const trimmed = text.trim();
  if (!/^(\d+(\.\d*)?|\.\d+)$/.test(trimmed)) return { ok: false, message: trimmed === "" ? "needs a number" : `"${trimmed}" is not a number` };
  const value = Number(trimmed);
  if (!(value > 0)) return { ok: false, message: "must be greater than 0" };
  return { ok: true, value };
}

/** 131072 -> "128K", 1048576 -> "1M", 5000 -> "5,000". */
export function formatLength(tokens: number): string {
  if (tokens >= 1024 * 1024 && tokens % (1024 * 1024) === 0) return `${tokens / (1024 * 1024)}M`;
  if (tokens >= 1024 && tokens % 1024 === 0) return `${tokens / 1024}K`;
  return tokens.toLocaleString("en-US");
}
