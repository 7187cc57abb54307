#!/usr/bin/env node
// First step of `npm test`, `npm run demo` and `npm run bench`: brings a fresh clone to a
// buildable state, so those commands work with nothing typed before them. Installs the npm
// dependencies when they are missing or stale, Debian's Rust with the wasm32 standard
// library when no wasm32 toolchain is found, (with --with-browser, for the tests) Debian's
// Chromium, and (with --with-cuda, which every npm script passes so that builds agree on
// whether the addon carries kernels) CUDA's compiler from pinned PyPI wheels, so the kernels
// compile even where there is no GPU; apt runs as root or through sudo without a password.
// Fast when everything is in place.
import { spawnSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { findNvcc, installWheels } from "./cuda-toolchain.mjs";
import { CHROMIUM, DEBIAN_BROWSER, DEBIAN_RUST, findWasmRustc, hasCargo, INSTALL_HINT, run } from "./toolchain.mjs";

const root = fileURLToPath(new URL("..", import.meta.url));

function fail(message) {
  console.error(`apb setup: ${message}`);
  process.exit(1);
}

function npmDependenciesStale() {
  const installed = join(root, "node_modules", ".package-lock.json");
  if (!existsSync(installed)) return true;
  return statSync(join(root, "package-lock.json")).mtimeMs > statSync(installed).mtimeMs;
}

function installNpmDependencies() {
  console.log("apb setup: installing npm dependencies (npm ci)");
  const r = spawnSync("npm", ["ci", "--no-audit", "--no-fund"], { cwd: root, stdio: "inherit" });
  if (r.status !== 0) fail("npm ci failed (see above)");
}

function aptInstall(packages, why) {
  if (run("apt-get", ["--version"]) === null) {
    fail(`missing ${why}, and apt-get is not here to install it; install ${packages.join(", ")} (for Rust, ${INSTALL_HINT.replace("install one: ", "")})`);
  }
  const asRoot = typeof process.getuid === "function" && process.getuid() === 0;
  const [cmd, ...lead] = asRoot ? ["apt-get"] : ["sudo", "-n", "apt-get"];
  console.log(`apb setup: installing ${packages.join(", ")} from Debian (${why})`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const apt = (args) => spawnSync(cmd, [...lead, ...args], { stdio: "inherit", env });
  if (apt(["update", "-qq"]).status !== 0 || apt(["install", "-y", "-qq", ...packages]).status !== 0) {
    fail(`could not install ${packages.join(" ")} (needs root or passwordless sudo); install them and run again`);
  }
}

const wantBrowser = process.argv.includes("--with-browser");
if (npmDependenciesStale()) installNpmDependencies();
const packages = [];
const reasons = [];
if (!findWasmRustc() || !hasCargo()) {
  packages.push(...DEBIAN_RUST);
  reasons.push("the wasm32 Rust target for the planner");
}
if (wantBrowser && !existsSync(CHROMIUM)) {
  packages.push(...DEBIAN_BROWSER);
  reasons.push("a real browser for the browser tests");
}
if (packages.length > 0) aptInstall(packages, reasons.join("; "));
// rustup users can then say `cargo +debian`; the build itself finds /usr/bin/rustc.
if (packages.includes("rustc") && run("rustup", ["--version"]) !== null) run("rustup", ["toolchain", "link", "debian", "/usr"]);
if (!findWasmRustc()) fail(`the wasm32 standard library is still missing; ${INSTALL_HINT}`);
if (process.argv.includes("--with-cuda") && !findNvcc()) {
  console.log("apb setup: installing CUDA's compiler from pinned PyPI wheels into .cuda-toolchain/");
  const problem = installWheels();
  if (problem) fail(`${problem}; set CUDA_HOME to a CUDA 13 toolkit instead`);
}
