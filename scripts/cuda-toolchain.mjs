// CUDA's compiler for building the kernels: $CUDA_HOME's nvcc when there is one, else
// NVIDIA's wheels from PyPI, pinned, installed into .cuda-toolchain/ (no system install,
// no GPU needed). The versions match the CUDA 13.0 driver of the GPU hosts.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { run } from "./toolchain.mjs";

const root = fileURLToPath(new URL("..", import.meta.url));
export const TOOLCHAIN_DIR = join(root, ".cuda-toolchain");
export const CUDA_WHEELS = [
  "nvidia-cuda-nvcc==13.0.88",
  "nvidia-nvvm==13.0.88",
  "nvidia-cuda-crt==13.0.88",
  "nvidia-cuda-runtime==13.0.96",
  "nvidia-cuda-cccl==13.0.85",
];

/** { nvcc, include } for the compiler to use, or null. */
export function findNvcc() {
  const home = process.env.CUDA_HOME;
  if (home && existsSync(join(home, "bin", "nvcc"))) return { nvcc: join(home, "bin", "nvcc"), include: join(home, "include"), source: "CUDA_HOME" };
  const wheel = join(TOOLCHAIN_DIR, "nvidia", "cu13");
  if (existsSync(join(wheel, "bin", "nvcc"))) return { nvcc: join(wheel, "bin", "nvcc"), include: join(wheel, "include"), source: "pinned PyPI wheels" };
  return null;
}

/** Installs the pinned wheels; returns an error line, or null on success. */
export function installWheels() {
  const python = run("python3", ["--version"]) !== null ? "python3" : "python";
  const args = ["-m", "pip", "install", "--quiet", "--no-deps", "--disable-pip-version-check", "--target", TOOLCHAIN_DIR, ...CUDA_WHEELS];
  return run(python, args) === null ? `pip could not install ${CUDA_WHEELS.join(" ")} into ${TOOLCHAIN_DIR}` : null;
}
