// The native build of apb-plan (the same Rust as the wasm module), run as a process.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

export const NATIVE_PLANNER = fileURLToPath(new URL("../crates/apb-plan/pkg/apb-plan", import.meta.url));

/** Runs `op` on each input (one JSON per line) in one process; returns the raw output lines. */
export function nativeCall(op: string, inputs: string[]): string[] {
  const r = spawnSync(NATIVE_PLANNER, [op], { input: `${inputs.join("\n")}\n`, encoding: "utf8", maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error(`native apb-plan failed (${r.status}): ${r.stderr}`);
  return r.stdout.trimEnd().split("\n");
}
