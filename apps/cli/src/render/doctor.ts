// The report `apb doctor` prints: GPUs, the driver, the libraries, this build.
import type { DoctorLibrary, DoctorReport, DoctorSearch, KernelKind } from "@apb/runtime";
import { gib } from "./format.js";
import { formatTable } from "./table.js";

const KERNEL_TEXT: Record<KernelKind, string> = {
  sm90: "sm90 (Hopper, sm_90a: TMA + wgmma)",
  portable: "portable (PTX for 8.0+)",
  none: "none (needs compute capability 8.0+)",
};

/** At most this many extra directories are listed in full; the rest are counted (--json has them all). */
const DIRECTORIES_SHOWN = 4;

function looked(s: DoctorSearch): string {
  if (s.directories.length === 0) return s.loader;
  const shown = s.directories.slice(0, DIRECTORIES_SHOWN).join(", ");
  const more = s.directories.length - DIRECTORIES_SHOWN;
  return `${s.loader}; then ${shown}${more > 0 ? ` and ${more} more (--json lists them)` : ""}`;
}

function details(indent: string, problem: string | null, fix: string | null, search: DoctorSearch | null): string[] {
  const lines: string[] = [];
  if (problem) lines.push(`${indent}${problem}`);
  if (fix) lines.push(`${indent}fix: ${fix}`);
  if (search) lines.push(`${indent}looked in: ${looked(search)}`);
  return lines;
}

function gpuSection(r: DoctorReport): string[] {
  if (r.gpus.length === 0) {
    const why = r.driver.found ? (r.driver.problem ?? "the driver reports no GPU") : "no NVIDIA driver";
    return [`GPUs: none visible (${why})`];
  }
  const rows = r.gpus.map((g) => [g.index, g.name, g.computeCapability, gib(g.totalMemoryBytes), g.multiprocessors, KERNEL_TEXT[g.kernel]]);
  return [`GPUs: ${r.gpus.length}`, formatTable(["gpu", "name", "compute capability", "memory GiB", "SMs", "apb kernel"], rows)];
}

function driverSection(r: DoctorReport): string[] {
  const d = r.driver;
  if (!d.found) return ["NVIDIA driver: not found", ...details("  ", d.problem, d.fix, d.search)];
  const version = d.version ?? "version unknown";
  const cuda = d.cudaVersion ? `supports CUDA ${d.cudaVersion}` : "CUDA version unknown";
  return [`NVIDIA driver: ${version}, ${cuda} (${d.file ?? "libcuda"})`, ...details("  ", d.problem, d.fix, null)];
}

/** "found", "missing", or "unusable" (found, with a problem: too old, no version). */
function status(l: DoctorLibrary): string {
  return !l.found ? "missing" : l.problem ? "unusable" : "found";
}

function librarySection(r: DoctorReport): string[] {
  const libs: DoctorLibrary[] = [r.cublas, r.cublasLt, r.nccl];
  const rows = libs.map((l) => [l.name, status(l), l.version ?? "-", l.file ?? "-"]);
  const lines = ["Libraries (loaded at run time):", formatTable(["library", "status", "version", "file"], rows)];
  const missing = libs.filter((l) => !l.found);
  // The places looked in are the same for every library unless the environment changed.
  const searches = new Set(missing.map((l) => looked(l.search)));
  const fixes = new Map<string, string>();
  for (const l of libs) {
    if (!l.problem) continue;
    const fix = l.fix && fixes.has(l.fix) ? `as for ${fixes.get(l.fix)!}` : l.fix;
    if (l.fix && !fixes.has(l.fix)) fixes.set(l.fix, l.name);
    const problem = l.problem.startsWith(`${l.name} `) ? l.problem.slice(l.name.length + 1) : l.problem;
    lines.push(`${l.name}: ${problem}`, ...details("  ", null, fix, !l.found && searches.size > 1 ? l.search : null));
  }
  if (searches.size === 1) lines.push(`looked in: ${[...searches][0]!}`);
  return lines;
}

function buildSection(r: DoctorReport): string[] {
  return [
    `This build: CUDA kernels ${r.kernelsBuilt ? "built in" : "not built in (nvcc was not found when it was built)"}; backends: ${r.backends.join(", ")}`,
  ];
}

/** One line on what apb can do here. */
function verdict(r: DoctorReport): string {
  const usable = r.gpus.filter((g) => g.kernel !== "none");
  if (!r.kernelsBuilt) return "verdict: apb runs on the CPU here (this build has no CUDA kernels)";
  if (usable.length === 0) {
    const why = !r.driver.found ? "no NVIDIA driver" : r.gpus.length === 0 ? "no GPU visible" : "no GPU of compute capability 8.0+";
    return `verdict: apb runs on the CPU here (${why})`;
  }
  if (!r.driver.cudaSupported) return `verdict: apb's CUDA kernels cannot run here until the driver supports CUDA ${r.driver.cudaRequired}`;
  const lacking = [r.cublas, r.cublasLt, r.nccl].filter((l) => status(l) !== "found").map((l) => `${l.name} ${status(l)}`);
  const gpus = `${usable.length} GPU${usable.length > 1 ? "s" : ""}`;
  return `verdict: apb's CUDA kernels can run on ${gpus}${lacking.length ? `; ${lacking.join(", ")} (see above)` : ""}`;
}

export function renderDoctor(r: DoctorReport): string {
  return [gpuSection(r), driverSection(r), librarySection(r), buildSection(r), [verdict(r)]].map((s) => s.join("\n")).join("\n\n");
}
