// The apb-plan wasm module and its ABI: write UTF-8 JSON into memory from apb_alloc, call
// apb_call(op, ptr, len) -> result length, read the result at apb_result_ptr, free.
import { PlannerError } from "./errors.js";

export const OPS = { plan: 0, compare: 1, recommend: 2, version: 3 } as const;
export type Op = keyof typeof OPS;

interface Exports {
  memory: WebAssembly.Memory;
  apb_alloc(len: number): number;
  apb_free(ptr: number, len: number): void;
  apb_call(op: number, ptr: number, len: number): number;
  apb_result_ptr(): number;
}

export type WasmSource = BufferSource | URL | string;

const DEFAULT_URL = new URL("../wasm/apb_plan.wasm", import.meta.url);

function isNode(): boolean {
  return typeof process !== "undefined" && typeof process.versions?.node === "string";
}

async function bytesOf(source: WasmSource): Promise<BufferSource> {
  if (typeof source !== "string" && !(source instanceof URL)) return source;
  const url = source instanceof URL ? source : new URL(source, DEFAULT_URL);
  if (url.protocol === "file:" && isNode()) {
    const { readFile } = await import("node:fs/promises");
    try {
      return await readFile(url);
    } catch (cause) {
      throw new PlannerError({
        code: "INTERNAL",
        path: "",
        message: `cannot read the planner's wasm module at ${url.pathname}: ${(cause as Error).message}; run npm run build`,
      });
    }
  }
  const response = await fetch(url);
  if (!response.ok) {
    throw new PlannerError({ code: "INTERNAL", path: "", message: `cannot fetch the planner's wasm module from ${url}: HTTP ${response.status}` });
  }
  return response.arrayBuffer();
}

function instantiate(module: WebAssembly.Module): Exports {
  return new WebAssembly.Instance(module, {}).exports as unknown as Exports;
}

export class WasmPlanner {
  private readonly encoder = new TextEncoder();
  private readonly decoder = new TextDecoder();
  private exports: Exports;

  private constructor(private readonly module: WebAssembly.Module) {
    this.exports = instantiate(module);
  }

  static async load(source: WasmSource = DEFAULT_URL): Promise<WasmPlanner> {
    return new WasmPlanner(await WebAssembly.compile(await bytesOf(source)));
  }

  /** Runs one operation; returns the raw JSON text the module wrote. */
  callRaw(op: Op, input: string): string {
    try {
      return this.callOnce(op, input);
    } catch (cause) {
      if (!(cause instanceof WebAssembly.RuntimeError)) throw cause;
      // A trap leaves the instance's memory in an unknown state: start a fresh one.
      this.exports = instantiate(this.module);
      throw new PlannerError({
        code: "INTERNAL",
        path: "",
        message: `the planner stopped on this input (${cause.message}); please report it with the input`,
      });
    }
  }

  private callOnce(op: Op, input: string): string {
    const e = this.exports;
    const bytes = this.encoder.encode(input);
    const ptr = e.apb_alloc(bytes.length);
    try {
      new Uint8Array(e.memory.buffer, ptr, bytes.length).set(bytes);
      const len = e.apb_call(OPS[op], ptr, bytes.length);
      return this.decoder.decode(new Uint8Array(e.memory.buffer, e.apb_result_ptr(), len));
    } finally {
      e.apb_free(ptr, bytes.length);
    }
  }

  /** Runs one operation and throws the module's `{error}` as a PlannerError. */
  call<T>(op: Op, input: unknown): T {
    const out = JSON.parse(this.callRaw(op, JSON.stringify(input))) as T | { error: ConstructorParameters<typeof PlannerError>[0] };
    if (out && typeof out === "object" && "error" in out) throw new PlannerError(out.error);
    return out as T;
  }
}
