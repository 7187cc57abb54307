// From the form's text to the planner's request: what the form itself cannot read becomes a
// message beside its field, and a planner error's path names the field it belongs to.
import { MODEL_PRESETS, modelFromHfConfig, PlannerError, type HardwareProfile, type ModelShape, type PlanRequest } from "@apb/planner";
import { parseCount, parseFigure, parseLength } from "./lengths.js";
import { HARDWARE_FIELDS, OPTIONAL_HARDWARE_FIELDS, type FormState, type HardwareField } from "./state.js";

/** Ids of the form's fields (each element's id in index.html). */
export type FieldId =
  | "model" | "config" | "context" | "query" | "hosts" | "hardware" | `hw-${HardwareField}`
  | "strategy" | "anchor" | "passing" | "balanced" | "general";

export interface FieldError {
  field: FieldId;
  message: string;
}

export type Built =
  | { ok: true; request: PlanRequest & { hosts: number; contextTokens: number }; contextLimit: number | null; modelName: string }
  | { ok: false; errors: FieldError[] };

/** apb and star prepend an anchor block: only they take an anchor length and balanced blocks
 * (the planner refuses `balanced` for the others). */
export const isAnchored = (strategy: string) => strategy === "apb" || strategy === "star";

/** Reads the form; every field that cannot be read is reported, not only the first. */
export function buildRequest(state: FormState): Built {
  const errors: FieldError[] = [];
  const need = <T>(field: FieldId, parsed: { ok: true; value: T } | { ok: false; message: string }): T | undefined => {
    if (parsed.ok) return parsed.value;
    errors.push({ field, message: parsed.message });
    return undefined;
  };

  let model: string | ModelShape = state.model;
  let contextLimit: number | null = null;
  let modelName = state.model;
  if (state.model === "custom") {
    const hf = readConfig(state.config);
    if ("message" in hf) errors.push({ field: "config", message: hf.message });
    else {
      model = hf.shape;
      contextLimit = hf.contextLimitTokens;
      modelName = `${hf.modelType} from config.json`;
    }
  } else {
    const preset = (MODEL_PRESETS as Record<string, { contextLimitTokens: number }>)[state.model];
    contextLimit = preset?.contextLimitTokens ?? null;
  }

  const contextTokens = need("context", parseLength(state.context, 1));
  const queryTokens = need("query", parseLength(state.query, 0));
  const hosts = need("hosts", parseCount(state.hosts, 1));
  const anchorTokens = state.anchor.trim() === "" ? undefined : need("anchor", parseLength(state.anchor, 0));
  const passingTokens = state.passing.trim() === "" ? undefined : need("passing", parseLength(state.passing, 0));

  let hardware: string | HardwareProfile = state.hardware;
  if (state.hardware === "custom") {
    const figures: Partial<Record<HardwareField, number>> = {};
    for (const field of HARDWARE_FIELDS) {
      if (OPTIONAL_HARDWARE_FIELDS.includes(field) && state.custom[field].trim() === "") continue;
      figures[field] = need(`hw-${field}`, parseFigure(state.custom[field]));
    }
    hardware = figures as HardwareProfile;
  }

  if (errors.length > 0 || contextTokens === undefined || hosts === undefined) return { ok: false, errors };
  const request = {
    model,
    hardware,
    contextTokens,
    queryTokens,
    hosts,
    strategy: state.strategy as PlanRequest["strategy"],
    ...(isAnchored(state.strategy) ? { balanced: state.balanced } : {}),
    ...(anchorTokens === undefined ? {} : { anchorTokens }),
    ...(passingTokens === undefined ? {} : { passingTokens }),
  };
  return { ok: true, request, contextLimit, modelName };
}

function readConfig(text: string): ReturnType<typeof modelFromHfConfig> | { message: string } {
  if (text.trim() === "") return { message: "paste a model's config.json here, or choose a preset" };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    return { message: `config.json is not valid JSON: ${(cause as Error).message}` };
  }
  try {
    return modelFromHfConfig(json);
  } catch (cause) {
    return { message: cause instanceof PlannerError ? cause.message : String(cause) };
  }
}

/** The field a planner error's path names (contextTokens, hosts, hardware.linkGBs, model.heads, ...). */
export function fieldForPath(path: string, state: FormState): FieldId {
  const [head, sub] = path.split(".");
  switch (head) {
    case "contextTokens":
      return "context";
    case "queryTokens":
    case "prefixTokens":
      return "query";
    case "hosts":
    case "maxHosts":
      return "hosts";
    case "anchorTokens":
      return "anchor";
    case "passingTokens":
      return "passing";
    case "balanced":
    case "allowBalanced":
      return "balanced";
    case "strategy":
    case "strategies":
      return "strategy";
    case "model":
      return state.model === "custom" ? "config" : "model";
    case "hardware":
      if (state.hardware === "custom" && (HARDWARE_FIELDS as readonly string[]).includes(sub ?? "")) return `hw-${sub as HardwareField}`;
      return "hardware";
    default:
      return "general";
  }
}

/** A thrown value as a field error. */
export function errorForField(cause: unknown, state: FormState): FieldError {
  if (cause instanceof PlannerError) return { field: fieldForPath(cause.path, state), message: cause.message };
  return { field: "general", message: cause instanceof Error ? cause.message : String(cause) };
}
