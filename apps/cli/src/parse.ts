// Option values as typed on the command line, turned into numbers and models. Every check
// names the flag and the range in the user's words, so a command can check all of its
// options before it reads a file or loads weights.
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { MODEL_PRESETS, modelFromHfConfig, type ModelShape } from "@apb/planner";
import { RuntimeError } from "@apb/runtime";
import { UsageError } from "./errors.js";

const SUFFIX: Record<string, number> = { "": 1, k: 1024, m: 1024 * 1024 };

export interface Range {
  min?: number;
  max?: number;
}

/** A flag's value the user can fix: coded like the library's own errors, the path is the flag. */
export function flagError(code: "WRONG_TYPE" | "OUT_OF_RANGE", flag: string, message: string): RuntimeError {
  return new RuntimeError({ code, path: flag, message: `${flag} ${message}` });
}

function inRange(flag: string, what: string, value: number, text: string, r: Range): number {
  const min = r.min ?? 0;
  const max = r.max ?? Number.MAX_SAFE_INTEGER;
  if (value < min || value > max) {
    const range = r.max === undefined ? `at least ${min}` : `between ${min} and ${max}`;
    throw flagError("OUT_OF_RANGE", flag, `must be ${what} ${range}, got ${text.trim()}`);
  }
  return value;
}

/** Token counts: "131072", "128K" or "1M" (binary multiples, as context lengths are quoted). */
export function parseTokens(flag: string, text: string, range: Range = {}): number {
  const m = /^\s*(\d+)\s*([kKmM]?)\s*$/.exec(text);
  if (!m) throw flagError("WRONG_TYPE", flag, `must be a whole number of tokens such as 131072 or 128K, got '${text}'`);
  return inRange(flag, "a whole number", Number(m[1]) * SUFFIX[(m[2] ?? "").toLowerCase()]!, text, range);
}

export function parseWhole(flag: string, text: string, range: Range = {}): number {
  if (!/^\s*\d+\s*$/.test(text)) throw flagError("WRONG_TYPE", flag, `must be a whole number, got '${text}'`);
  return inRange(flag, "a whole number", Number(text), text, range);
}

/** A decimal number; `above` excludes its bound (top-p must be more than 0). */
export function parseNumber(flag: string, text: string, range: { min: number; max: number; above?: boolean }): number {
  const v = text.trim() === "" ? NaN : Number(text);
  if (!Number.isFinite(v)) throw flagError("WRONG_TYPE", flag, `must be a number, got '${text}'`);
  if (range.above ? v <= range.min : v < range.min) {
    throw flagError("OUT_OF_RANGE", flag, `must be ${range.above ? "more than" : "at least"} ${range.min} and at most ${range.max}, got ${text.trim()}`);
  }
  if (v > range.max) throw flagError("OUT_OF_RANGE", flag, `must be at most ${range.max}, got ${text.trim()}`);
  return v;
}

/** One of a fixed list of names. */
export function parseChoice<T extends string>(flag: string, text: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(text)) throw flagError("OUT_OF_RANGE", flag, `must be one of ${allowed.join(", ")}; got '${text}'`);
  return text as T;
}

export interface ModelChoice {
  model: string | ModelShape;
  label: string;
  /** The longest context the model is made for, when known. */
  contextLimitTokens: number | null;
}

/** A preset name, a config.json, or a model directory holding one; `flag` is the option that gave it. */
export function parseModel(text: string, flag = "--model"): ModelChoice {
  const looksLikePath = text.includes("/") || text.endsWith(".json") || existsSync(text);
  if (!looksLikePath) {
    const preset = (MODEL_PRESETS as Record<string, { contextLimitTokens: number }>)[text.toLowerCase()];
    return { model: text, label: text, contextLimitTokens: preset?.contextLimitTokens ?? null };
  }
  const file = existsSync(text) && statSync(text).isDirectory() ? join(text, "config.json") : text;
  let config: unknown;
  try {
    config = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new UsageError(`${flag}: cannot read ${file}: ${(e as Error).message}`);
  }
  const hf = modelFromHfConfig(config);
  return { model: hf.shape, label: file, contextLimitTokens: hf.contextLimitTokens };
}
