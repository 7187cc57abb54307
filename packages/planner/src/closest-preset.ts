// The hardware preset nearest to measured rates: where a calibration cannot measure a field
// (the link between hosts), it borrows the field from the preset most like the machine.
import { HARDWARE_PRESETS, type HardwarePresetName } from "./presets.js";
import type { HardwareProfile } from "./schema.js";

export type MeasuredRates = Pick<HardwareProfile, "matmulTflops" | "attentionTflops" | "hbmGBs">;

/** The preset whose GEMM, attention and memory rates are nearest in ratio (log distance), so a
 * machine twice as fast as one preset and half as fast as another is equally far from both. */
export function closestHardwarePreset(rates: MeasuredRates): HardwarePresetName {
  const distance = (p: HardwareProfile) =>
    Math.log(p.matmulTflops / rates.matmulTflops) ** 2 + Math.log(p.attentionTflops / rates.attentionTflops) ** 2 + Math.log(p.hbmGBs / rates.hbmGBs) ** 2;
  const names = Object.keys(HARDWARE_PRESETS) as HardwarePresetName[];
  return names.reduce((best, name) => (distance(HARDWARE_PRESETS[name].profile) < distance(HARDWARE_PRESETS[best].profile) ? name : best));
}
