// The form's state as text, exactly as typed, and its place in the URL's query string.
// Only what differs from the defaults is written, so a shared link stays short.
import { DEFAULT_HARDWARE, HARDWARE_PRESETS } from "@apb/planner";

export const HARDWARE_FIELDS = ["matmulTflops", "attentionTflops", "hbmGBs", "linkGBs", "linkLatencyUs", "memoryGiB", "multiprocessors", "attentionBlockUs"] as const;
export type HardwareField = (typeof HARDWARE_FIELDS)[number];
/** Figures a profile may leave out (then attention is timed by FLOPs, not by kernel blocks): empty in the form. */
export const OPTIONAL_HARDWARE_FIELDS: readonly HardwareField[] = ["multiprocessors", "attentionBlockUs"];

export interface FormState {
  /** A model preset's name, or "custom" for a pasted config.json. */
  model: string;
  config: string;
  context: string;
  query: string;
  hosts: string;
  /** A hardware preset's name, or "custom" for the figures in `custom`. */
  hardware: string;
  custom: Record<HardwareField, string>;
  strategy: string;
  /** Empty: the planner's default. */
  anchor: string;
  passing: string;
  balanced: boolean;
}

export function presetFigures(name: string): Record<HardwareField, string> {
  const presets: Record<string, { profile: Partial<Record<HardwareField, number>> }> = HARDWARE_PRESETS;
  const profile = (presets[name] ?? presets[DEFAULT_HARDWARE])!.profile;
  return Object.fromEntries(HARDWARE_FIELDS.map((k) => [k, profile[k] === undefined ? "" : String(profile[k])])) as Record<HardwareField, string>;
}

export const DEFAULT_STATE: FormState = Object.freeze({
  model: "llama-3.1-8b",
  config: "",
  context: "128K",
  query: "128",
  hosts: "8",
  hardware: DEFAULT_HARDWARE,
  custom: presetFigures(DEFAULT_HARDWARE),
  strategy: "apb",
  anchor: "",
  passing: "",
  // The runtime's default for apb (the planner's `balanced`; star splits evenly unless asked).
  balanced: true,
});

/** URL parameter names. */
const KEYS = {
  model: "model",
  config: "config",
  context: "context",
  query: "query",
  hosts: "hosts",
  hardware: "hardware",
  strategy: "strategy",
  anchor: "anchor",
  passing: "passing",
} as const satisfies Partial<Record<keyof FormState, string>>;

const CUSTOM_KEYS: Record<HardwareField, string> = {
  matmulTflops: "matmul",
  attentionTflops: "attention",
  hbmGBs: "hbm",
  linkGBs: "link",
  linkLatencyUs: "latency",
  memoryGiB: "memory",
  multiprocessors: "sms",
  attentionBlockUs: "blockus",
};

export function toSearch(state: FormState): string {
  const params = new URLSearchParams();
  for (const [field, key] of Object.entries(KEYS) as [keyof typeof KEYS, string][]) {
    if (field === "config" && state.model !== "custom") continue;
    if (state[field] !== DEFAULT_STATE[field]) params.set(key, state[field]);
  }
  if (state.hardware === "custom") {
    for (const field of HARDWARE_FIELDS) params.set(CUSTOM_KEYS[field], state.custom[field]);
  }
  if (state.balanced !== DEFAULT_STATE.balanced) params.set("balanced", state.balanced ? "1" : "0");
  return params.toString();
}

export function fromSearch(search: string): FormState {
  const params = new URLSearchParams(search);
  const state: FormState = { ...DEFAULT_STATE, custom: { ...DEFAULT_STATE.custom } };
  for (const [field, key] of Object.entries(KEYS) as [keyof typeof KEYS, string][]) {
    const value = params.get(key);
    if (value !== null) state[field] = value;
  }
  if (state.hardware === "custom") {
    for (const field of HARDWARE_FIELDS) {
      const value = params.get(CUSTOM_KEYS[field]);
      if (value !== null) state.custom[field] = value;
    }
  }
  const balanced = params.get("balanced");
  state.balanced = balanced === null ? DEFAULT_STATE.balanced : balanced === "1" || balanced === "true";
  if (state.model !== "custom") state.config = "";
  return state;
}
