// `apb doctor` as a user runs it: a real process, on whatever machine runs the tests (with
// no GPU: no driver, no cuBLAS, no NCCL; the report says so and how to fix it, and exits 0).
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const BIN = fileURLToPath(new URL("../dist/bin.js", import.meta.url));

function apb(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8", env: { ...process.env, ...env } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** Whether the dynamic loader could find `file`, judged without apb: the ld.so cache, LD_LIBRARY_PATH and the system directories. */
function loaderSees(file: string): boolean {
  const cache = spawnSync("ldconfig", ["-p"], { encoding: "utf8" });
  if (cache.stdout?.includes(file)) return true;
  const dirs = [...(process.env.LD_LIBRARY_PATH ?? "").split(":").filter(Boolean), "/lib", "/usr/lib", "/lib64", "/usr/lib64", "/usr/lib/x86_64-linux-gnu"];
  return dirs.some((d) => existsSync(join(d, file)));
}

const SEARCH_KEYS = ["directories", "elsewhere", "loader", "tried"];
const LIBRARY_KEYS = ["file", "fix", "found", "name", "problem", "search", "version"];

const report = JSON.parse(apb(["doctor", "--json"]).out);

describe("apb doctor --json", () => {
  it("exits 0 with one JSON object of stable, always-present fields", () => {
    const r = apb(["doctor", "--json"]);
    expect(r.code).toBe(0);
    expect(r.err).toBe("");
    const j = JSON.parse(r.out);
    expect(Object.keys(j).sort()).toEqual(["backends", "cublas", "cublasLt", "driver", "gpus", "kernelsBuilt", "nccl"]);
    expect(Object.keys(j.driver).sort()).toEqual(["cudaRequired", "cudaSupported", "cudaVersion", "file", "fix", "found", "problem", "search", "version"]);
    expect(j.driver.cudaRequired).toBe("13.0");
    for (const [key, name] of [["cublas", "cuBLAS"], ["cublasLt", "cuBLASLt"], ["nccl", "NCCL"]] as const) {
      const lib = j[key];
      expect(Object.keys(lib).sort()).toEqual(LIBRARY_KEYS);
      expect(Object.keys(lib.search).sort()).toEqual(SEARCH_KEYS);
      expect(lib.name).toBe(name);
      expect(lib.found).toBe(lib.file !== null);
      if (!lib.found) expect(lib.fix).toMatch(/\S/);
      expect(lib.search.loader).toMatch(/LD_LIBRARY_PATH/);
    }
    expect(typeof j.kernelsBuilt).toBe("boolean");
    expect(j.backends).toContain("cpu");
    expect(j.backends.includes("cuda")).toBe(j.kernelsBuilt);
    for (const g of j.gpus) expect(["sm90", "portable", "none"]).toContain(g.kernel);
  });

  it.runIf(!loaderSees("libcuda.so.1"))("without the NVIDIA driver: no GPUs, and the driver is reported missing", () => {
    expect(report.gpus).toEqual([]);
    expect(report.driver).toMatchObject({ found: false, file: null, cudaVersion: null, cudaSupported: false, problem: "no NVIDIA driver (libcuda.so.1 not found)" });
    expect(report.driver.fix).toMatch(/install NVIDIA's driver/);
    expect(report.driver.search.tried).toEqual(["libcuda.so.1", "libcuda.so"]);
  });

  it.runIf(!loaderSees("libnccl.so.2") && !loaderSees("libnccl.so"))("finds a library off the loader's path and says which directory to add", () => {
    const venv = mkdtempSync(join(tmpdir(), "apb-doctor-"));
    const lib = join(venv, "lib", "python3.12", "site-packages", "nvidia", "nccl", "lib");
    mkdirSync(lib, { recursive: true });
    writeFileSync(join(lib, "libnccl.so.2"), "");
    const nccl = JSON.parse(apb(["doctor", "--json"], { VIRTUAL_ENV: venv }).out).nccl;
    expect(nccl.found).toBe(false);
    expect(nccl.search.directories).toContain(lib);
    expect(nccl.search.elsewhere).toEqual([join(lib, "libnccl.so.2")]);
    expect(nccl.problem).toMatch(/NCCL is not on the loader's path/);
    expect(nccl.fix).toBe(`put its directory on the loader's path: export LD_LIBRARY_PATH=${lib}:$LD_LIBRARY_PATH`);
  });

  it.runIf(!loaderSees("libnccl.so"))("tells a file that does not load from one that is missing", () => {
    const dir = mkdtempSync(join(tmpdir(), "apb-doctor-"));
    writeFileSync(join(dir, "libnccl.so.2"), "not a shared library");
    const nccl = JSON.parse(apb(["doctor", "--json"], { LD_LIBRARY_PATH: dir }).out).nccl;
    expect(nccl.found).toBe(false);
    expect(nccl.problem).toMatch(new RegExp(`NCCL was found but does not load: ${dir}/libnccl.so.2`));
    expect(nccl.fix).toMatch(/reinstall/);
    expect(nccl.search.loader).toContain(`LD_LIBRARY_PATH (=${dir})`);
  });
});

describe("apb doctor", () => {
  it("prints GPUs, the driver, cuBLAS and NCCL, what is missing and how to fix it", () => {
    const r = apb(["doctor"]);
    expect(r.code).toBe(0);
    expect(r.err).toBe("");
    expect(r.out).toMatch(/^GPUs: /m);
    expect(r.out).toMatch(/^NVIDIA driver: /m);
    expect(r.out).toMatch(/^library\s+status\s+version\s+file$/m);
    for (const lib of [report.cublas, report.cublasLt, report.nccl]) {
      const status = !lib.found ? "missing" : lib.problem ? "unusable" : "found";
      expect(r.out).toMatch(new RegExp(`^${lib.name}\\s+${status}\\s`, "m"));
      if (lib.problem) expect(r.out).toMatch(new RegExp(`^${lib.name}: `, "m"));
    }
    if (!report.cublas.found) expect(r.out).toContain(`fix: ${report.cublas.fix}`);
    if (!report.nccl.found) expect(r.out).toContain(`fix: ${report.nccl.fix}`);
    if (!report.cublas.found || !report.nccl.found) expect(r.out).toMatch(/^looked in: the dynamic loader: LD_LIBRARY_PATH/m);
    expect(r.out).toMatch(/^This build: CUDA kernels (built in|not built in).*; backends: cpu/m);
    expect(r.out).toMatch(/^verdict: /m);
  });

  it.runIf(!loaderSees("libcuda.so.1"))("without the driver says so, how to fix it, and that apb runs on the CPU", () => {
    const out = apb(["doctor"]).out;
    expect(out).toMatch(/^GPUs: none visible \(no NVIDIA driver\)$/m);
    expect(out).toContain("no NVIDIA driver (libcuda.so.1 not found)");
    expect(out).toMatch(/fix: install NVIDIA's driver/);
    expect(out).toMatch(/^verdict: apb runs on the CPU here/m);
  });

  it("is listed in --help", () => {
    expect(apb(["--help"]).out).toMatch(/doctor \[options\]/);
  });
});
