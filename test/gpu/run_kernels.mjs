#!/usr/bin/env node
// Runs a batch of kernel calls through the addon's runKernel for the Python GPU checks
// (test/gpu/kernels.py writes the batch, reads the answers). Usage:
//   node run_kernels.mjs DIR/manifest.json
// manifest.json: {calls: [{kernel, params, tensors: {name: {file, dtype, elements}}, iterations, keep}]}
// with each tensor's raw little-endian bytes in its file. Writes each returned tensor (those
// named in keep, when keep is a list) to DIR/out-<call>-<name>.bin and DIR/result.json:
// {calls: [{gpu, kernel, medianMs, tensors: {name: file}} or {error: {code, message, path}}]}.
// A call that throws is recorded and the batch goes on.
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { runKernel } from "@apb/native/testing";

const manifestPath = process.argv[2];
if (!manifestPath) {
  console.error("usage: node run_kernels.mjs DIR/manifest.json");
  process.exit(2);
}
const dir = dirname(resolve(manifestPath));
const { calls } = JSON.parse(readFileSync(manifestPath, "utf8"));

/** The addon throws errors whose message is "APB_ERROR:" + JSON {code, message, path}. */
function errorOf(e) {
  const text = String(e?.message ?? e);
  const body = text.startsWith("APB_ERROR:") ? text.slice("APB_ERROR:".length) : text;
  try {
    const parsed = JSON.parse(body);
    if (parsed && typeof parsed === "object") return parsed;
  } catch {
    // not JSON: kept as it is below
  }
  return { code: "UNKNOWN", message: text };
}

const results = calls.map((call, i) => {
  const tensors = {};
  for (const [name, t] of Object.entries(call.tensors)) tensors[name] = readFileSync(t.file);
  let r;
  try {
    r = runKernel({ kernel: call.kernel, params: JSON.stringify(call.params ?? {}), tensors, iterations: call.iterations ?? 0 });
  } catch (e) {
    return { error: errorOf(e) };
  }
  const files = {};
  for (const [name, buffer] of Object.entries(r.tensors)) {
    if (Array.isArray(call.keep) && !call.keep.includes(name)) continue;
    files[name] = join(dir, `out-${i}-${name}.bin`);
    writeFileSync(files[name], buffer);
  }
  return { gpu: r.gpu, kernel: r.kernel, medianMs: r.medianMs ?? null, tensors: files };
});
writeFileSync(join(dir, "result.json"), JSON.stringify({ calls: results }));
