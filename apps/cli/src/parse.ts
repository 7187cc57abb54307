// Option values as typed on the command line, turned into numbers and models.
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { MODEL_PRESETS, modelFromHfConfig, type ModelShape } from "@apb/planner";
import { UsageError } from "./errors.js";

const SUFFIX: Record<string, number> = { "": 1, k: 1024, m: 1024 * 1024 };

/** Token counts: "131072", "128K" or "1M" (binary multiples, as context lengths are quoted). */
export function parseTokens(flag: string, text: string): number {
  const m = /^\s*(\d+)\s*([kKmM]?)\s*$/.exec(text);
  if (!m) throw new UsageError(`${flag} must be a whole number of tokens such as 131072 or 128K, got '${text}'`);
  return Number(m[1]) * SUFFIX[(m[2] ?? "").toLowerCase()]!;
}

export function parseWhole(flag: string, text: string): number {
  if (!/^\s*\d+\s*$/.test(text)) throw new UsageError(`${flag} must be a whole number, got '${text}'`);
  return Number(text);
}

export interface ModelChoice {
  model: string | ModelShape;
  label: string;
  /** The longest context the model is made for, when known. */
  contextLimitTokens: number | null;
}

/** A preset name, a config.json, or a model directory holding one. */
export function parseModel(text: string): ModelChoice {
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
    throw new UsageError(`--model: cannot read ${file}: ${(e as Error).message}`);
  }
  const hf = modelFromHfConfig(config);
  return { model: hf.shape, label: file, contextLimitTokens: hf.contextLimitTokens };
}
