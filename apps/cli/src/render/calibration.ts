// `apb calibrate`'s tables: each GEMM's time and rate, then the profile field by field with
// where each value came from.
import { HARDWARE_FIELDS, type HardwareProfileFile } from "@apb/planner";
import type { Calibration } from "@apb/runtime";
import { ms } from "./format.js";
import { formatTable } from "./table.js";

const UNITS: Record<string, string> = {
  matmulTflops: "TFLOP/s",
  attentionTflops: "TFLOP/s",
  hbmGBs: "GB/s",
  linkGBs: "GB/s",
  linkLatencyUs: "us",
  memoryGiB: "GiB",
  multiprocessors: "",
  attentionBlockUs: "us",
};

function rate(x: number): string {
  return x >= 100 ? x.toFixed(0) : x >= 1 ? x.toFixed(1) : x.toPrecision(3);
}

export function renderCalibration(c: Calibration, file: HardwareProfileFile, out: string | null): string {
  const gemms = formatTable(
    ["GEMM", "tokens x in -> out", "ms", "TFLOP/s"],
    [
      ...c.gemms.map((g) => [g.name, `${g.tokens} x ${g.k} -> ${g.n}`, ms(g.ms), rate(g.tflops)]),
      ["layer", "", ms(c.gemms.reduce((t, g) => t + g.ms, 0)), rate(c.matmulTflops)],
    ],
  );
  const fields = formatTable(
    ["field", "value", "unit", "source"],
    HARDWARE_FIELDS.flatMap((f) => {
      const value = file.profile[f];
      return value === undefined ? [] : [[f, rate(value), UNITS[f]!, file.sources?.[f] ?? (file.measured.includes(f) ? "measured" : "")]];
    }),
  );
  const lines = [`${file.device} · ${c.backend} · measured ${file.measured.join(", ")}`, "", gemms, "", fields, ""];
  lines.push(out === null ? "No --out: nothing written." : `wrote ${out}; plan with it: apb plan --hardware-file ${out} --model <model> --length <tokens>`);
  return lines.join("\n");
}
