// Finding the toolchains the build needs. Shared by setup.mjs and build-plan.mjs.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";

export const WASM_TARGET = "wasm32-unknown-unknown";
export const DEBIAN_RUST = ["rustc", "cargo", "libstd-rust-dev-wasm32"];
export const DEBIAN_BROWSER = ["chromium"];
export const CHROMIUM = "/usr/bin/chromium";
export const INSTALL_HINT =
  "install one: `sudo apt-get install rustc cargo libstd-rust-dev-wasm32` (Debian) or `rustup target add wasm32-unknown-unknown`";

export function run(cmd, args, options = {}) {
  const r = spawnSync(cmd, args, { encoding: "utf8", ...options });
  return r.status === 0 ? (r.stdout ?? "").trim() : null;
}

/** A rustc whose sysroot holds the wasm32 standard library, as [command, ...leadingArgs]. */
export function findWasmRustc() {
  const candidates = [["rustc"], ["rustc", "+debian"], ["/usr/bin/rustc"]];
  for (const [cmd, ...lead] of candidates) {
    const libdir = run(cmd, [...lead, "--print", "target-libdir", "--target", WASM_TARGET]);
    if (!libdir || !existsSync(libdir)) continue;
    if (readdirSync(libdir).some((f) => f.startsWith("libstd-"))) return [cmd, ...lead];
  }
  return null;
}

export function hasCargo() {
  return run("cargo", ["--version"]) !== null;
}
