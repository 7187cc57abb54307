// What this machine offers apb (the addon's probe): the NVIDIA driver, its GPUs, cuBLAS,
// cuBLASLt and NCCL, and this build's kernels and backends. Every field is always present
// (null where unknown), so the JSON `apb doctor --json` prints keeps one shape.
import { doctor as nativeDoctor, type DoctorLibrary as NativeLibrary, type DoctorSearch as NativeSearch } from "@apb/native";
import { fromNative } from "./native-errors.js";

export type KernelKind = "sm90" | "portable" | "none";

export interface DoctorGpu {
  index: number;
  name: string;
  /** "9.0". */
  computeCapability: string;
  totalMemoryBytes: number;
  multiprocessors: number;
  /** apb's attention kernel for this GPU: "sm90" (Hopper, 9.0), "portable" (8.0+) or "none". */
  kernel: KernelKind;
}

/** Where a library was looked for. */
export interface DoctorSearch {
  /** File names handed to the dynamic loader, in order. */
  tried: string[];
  /** The loader's own search path, in words. */
  loader: string;
  /** Further directories looked in when the loader found nothing. */
  directories: string[];
  /** Copies found there, outside the loader's path. */
  elsewhere: string[];
}

export interface DoctorDriver {
  found: boolean;
  file: string | null;
  /** The NVIDIA driver's version ("580.65.06"), when the system shows it. */
  version: string | null;
  /** The newest CUDA release the driver supports ("13.0"). */
  cudaVersion: string | null;
  /** The CUDA release apb needs the driver to support. */
  cudaRequired: string;
  cudaSupported: boolean;
  problem: string | null;
  fix: string | null;
  search: DoctorSearch;
}

export interface DoctorLibrary {
  /** "cuBLAS", "cuBLASLt" or "NCCL". */
  name: string;
  found: boolean;
  file: string | null;
  version: string | null;
  problem: string | null;
  fix: string | null;
  search: DoctorSearch;
}

export interface DoctorReport {
  gpus: DoctorGpu[];
  driver: DoctorDriver;
  cublas: DoctorLibrary;
  cublasLt: DoctorLibrary;
  nccl: DoctorLibrary;
  /** Whether this build carries the CUDA kernels. */
  kernelsBuilt: boolean;
  /** The backends of this build ("cpu", and "cuda" with the kernels). */
  backends: string[];
}

function search(s: NativeSearch): DoctorSearch {
  return { tried: s.tried, loader: s.loader, directories: s.directories, elsewhere: s.elsewhere };
}

function library(l: NativeLibrary): DoctorLibrary {
  return { name: l.name, found: l.found, file: l.file ?? null, version: l.version ?? null, problem: l.problem ?? null, fix: l.fix ?? null, search: search(l.search) };
}

function kernel(kind: string): KernelKind {
  return kind === "sm90" || kind === "portable" ? kind : "none";
}

/** Probes the machine; needs no GPU. Throws a RuntimeError only if the probe itself fails. */
export function doctor(): DoctorReport {
  let r: ReturnType<typeof nativeDoctor>;
  try {
    r = nativeDoctor();
  } catch (e) {
    throw fromNative(e);
  }
  const d = r.driver;
  return {
    gpus: r.gpus.map((g) => ({
      index: g.index,
      name: g.name,
      computeCapability: g.computeCapability,
      totalMemoryBytes: g.totalMemoryBytes,
      multiprocessors: g.multiprocessors,
      kernel: kernel(g.kernel),
    })),
    driver: {
      found: d.found,
      file: d.file ?? null,
      version: d.version ?? null,
      cudaVersion: d.cudaVersion ?? null,
      cudaRequired: d.cudaRequired,
      cudaSupported: d.cudaSupported,
      problem: d.problem ?? null,
      fix: d.fix ?? null,
      search: search(d.search),
    },
    cublas: library(r.cublas),
    cublasLt: library(r.cublasLt),
    nccl: library(r.nccl),
    kernelsBuilt: r.kernelsBuilt,
    backends: r.backends,
  };
}
