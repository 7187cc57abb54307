// The planner API: checks requests with zod, fills in presets, and runs the Rust planner
// compiled to wasm. Layouts and costs are computed only there.
import type { z } from "zod";
import { fromZod, PlannerError } from "./errors.js";
import { DEFAULT_HARDWARE, HARDWARE_PRESETS, MODEL_PRESETS } from "./presets.js";
import {
  compareRequestSchema,
  type CompareRequest,
  type HardwareProfile,
  type ModelShape,
  planRequestSchema,
  type PlanRequest,
  recommendRequestSchema,
  type RecommendRequest,
} from "./schema.js";
import type { Comparison, Plan, Recommendation } from "./types.js";
import { type Op, WasmPlanner, type WasmSource } from "./wasm.js";

function check<S extends z.ZodType>(schema: S, request: unknown): z.output<S> {
  const parsed = schema.safeParse(request);
  if (!parsed.success) throw fromZod(parsed.error, request);
  return parsed.data;
}

/** A preset's value by name (case-insensitive), or an error listing the presets. */
function fromPreset<T>(field: "model" | "hardware", name: string, presets: Record<string, T>, hint = ""): T {
  const preset = presets[name.toLowerCase()];
  if (preset === undefined) {
    throw new PlannerError({
      code: "OUT_OF_RANGE",
      path: field,
      message: `${field} "${name}" is not a preset; presets: ${Object.keys(presets).join(", ")}${hint}`,
    });
  }
  return preset;
}

export function resolveModel(model: string | ModelShape): ModelShape {
  if (typeof model !== "string") return model;
  const presets: Record<string, { shape: ModelShape }> = MODEL_PRESETS;
  return fromPreset("model", model, presets, " (or give a config.json)").shape;
}

export function resolveHardware(hardware: string | HardwareProfile | undefined): HardwareProfile {
  if (typeof hardware === "object") return hardware;
  const presets: Record<string, { profile: HardwareProfile }> = HARDWARE_PRESETS;
  return fromPreset("hardware", hardware ?? DEFAULT_HARDWARE, presets).profile;
}

/** The request as the Rust planner reads it: presets expanded, nothing else changed. */
function wire<T extends { model: string | ModelShape; hardware?: string | HardwareProfile | undefined }>(request: T) {
  return { ...request, model: resolveModel(request.model), hardware: resolveHardware(request.hardware) };
}

export class Planner {
  private constructor(private readonly wasm: WasmPlanner) {}

  /** Loads the wasm module: from this package by default, or from bytes or a URL. */
  static async create(source?: WasmSource): Promise<Planner> {
    return new Planner(await WasmPlanner.load(source));
  }

  plan(request: PlanRequest): Plan {
    return this.run("plan", wire(check(planRequestSchema, request)));
  }

  compare(request: CompareRequest): Comparison {
    return this.run("compare", wire(check(compareRequestSchema, request)));
  }

  recommend(request: RecommendRequest): Recommendation {
    return this.run("recommend", wire(check(recommendRequestSchema, request)));
  }

  version(): string {
    return this.run<{ version: string }>("version", {}).version;
  }

  /** Runs an operation on JSON as the Rust planner reads it and returns its JSON text
   * unchanged (errors included): for parity checks against the native build and for bug reports. */
  raw(op: Op, inputJson: string): string {
    return this.wasm.callRaw(op, inputJson);
  }

  /** The exact JSON the Rust planner receives for a request. */
  static wireInput(op: "plan" | "compare" | "recommend", request: unknown): unknown {
    const schema = { plan: planRequestSchema, compare: compareRequestSchema, recommend: recommendRequestSchema }[op];
    return wire(check(schema, request) as PlanRequest);
  }

  private run<T>(op: Op, input: unknown): T {
    return this.wasm.call<T>(op, input);
  }
}

let shared: Promise<Planner> | undefined;

/** A planner loaded once per process (or page) and reused. */
export function defaultPlanner(): Promise<Planner> {
  shared ??= Planner.create();
  return shared;
}
