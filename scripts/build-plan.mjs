#!/usr/bin/env node
// Builds crates/apb-plan twice: to wasm32 for the planner package (browser and Node), and
// natively for the command line used by parity tests and benchmarks. Both land in
// crates/apb-plan/pkg/.
//
// The wasm build calls rustc directly (the crate has no dependencies), so any rustc with
// the wasm32-unknown-unknown standard library works: rustup's target, or Debian's Rust
// 1.63 (rustc + libstd-rust-dev-wasm32), linked as `rustup toolchain link debian /usr`
// or found at /usr/bin/rustc.
import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { findWasmRustc, INSTALL_HINT, WASM_TARGET } from "./toolchain.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const crate = join(root, "crates", "apb-plan");
const pkg = join(crate, "pkg");

function fail(message) {
  console.error(`apb-plan build: ${message}`);
  process.exit(1);
}

function crateVersion() {
  const toml = readFileSync(join(crate, "Cargo.toml"), "utf8");
  const m = toml.match(/^version\s*=\s*"([^"]+)"/m);
  return m ? m[1] : "0.0.0";
}

function buildWasm() {
  const rustc = findWasmRustc();
  if (!rustc) fail(`no Rust toolchain with the ${WASM_TARGET} target was found; ${INSTALL_HINT}`);
  const [cmd, ...lead] = rustc;
  const raw = join(pkg, "apb_plan.raw.wasm");
  const args = [
    ...lead,
    "--edition", "2021",
    "--crate-type", "cdylib",
    "--crate-name", "apb_plan",
    "--target", WASM_TARGET,
    "-C", "opt-level=s",
    "-C", "panic=abort",
    "-C", "lto",
    "-C", "codegen-units=1",
    "-C", "strip=symbols",
    join(crate, "src", "lib.rs"),
    "-o", raw,
  ];
  const r = spawnSync(cmd, args, {
    stdio: "inherit",
    env: { ...process.env, CARGO_PKG_VERSION: crateVersion() },
  });
  if (r.status !== 0) fail(`rustc (${rustc.join(" ")}) failed to build the wasm module`);
  const out = join(pkg, "apb_plan.wasm");
  if (!optimise(raw, out)) copyFileSync(raw, out);
  rmSync(raw);
  const kib = (statSync(out).size / 1024).toFixed(1);
  console.log(`apb-plan: wasm ${kib} KiB (${rustc.join(" ")})`);
}

/** Shrinks the module with binaryen's wasm-opt (from npm, or the system's). */
function optimise(input, output) {
  const local = join(root, "node_modules", ".bin", "wasm-opt");
  for (const tool of [local, "wasm-opt"]) {
    const r = spawnSync(tool, ["-Oz", "--strip-debug", "--strip-producers", input, "-o", output], { stdio: "ignore" });
    if (r.status === 0) return true;
  }
  console.warn("apb-plan: wasm-opt not found; the wasm module is left unoptimised");
  return false;
}

function buildNative() {
  try {
    execFileSync("cargo", ["build", "--release", "--quiet", "-p", "apb-plan"], { cwd: root, stdio: "inherit" });
  } catch {
    fail("cargo build of the native apb-plan failed (see above)");
  }
  const exe = process.platform === "win32" ? "apb-plan.exe" : "apb-plan";
  copyFileSync(join(root, "target", "release", exe), join(pkg, exe));
}

mkdirSync(pkg, { recursive: true });
buildWasm();
buildNative();
