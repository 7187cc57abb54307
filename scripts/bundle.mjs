#!/usr/bin/env node
// Writes a self-contained folder that runs `apb` and the GPU checks on a machine with no
// Node, npm or Rust toolchain (a GPU host): the Node runtime, the CLI bundled into one ES
// module, the planner's wasm, the native addon, the kernels and the GPU check script.
//
//   node scripts/bundle.mjs [outDir] [--xz]     (npm run bundle builds everything first)
//
// Layout: bin/node, bin/apb, lib/apb.mjs, wasm/apb_plan.wasm, node_modules/@apb/native/,
// kernels/*.fatbin, test/gpu/ (the GPU checks: they run the kernels through the addon's testing entry), bench/, web/ (the page `apb serve` serves).
import { spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const from = (...p) => join(root, ...p);

/**
 * bin/apb: runs the bundled node on the bundled CLI. It is often symlinked onto PATH
 * (/usr/local/bin/apb -> .../bundle/bin/apb), so it follows links to its real place before
 * looking for bin/node beside it; a plain POSIX loop, as readlink -f is not everywhere.
 */
export function launcherScript() {
  return [
    "#!/bin/sh",
    "# The real place of this script, through any symlinks to it, then the node beside it.",
    'self="$0"',
    'while [ -L "$self" ]; do',
    '  link="$(readlink "$self")"',
    '  case "$link" in',
    '    /*) self="$link" ;;',
    '    *) self="$(dirname "$self")/$link" ;;',
    "  esac",
    "done",
    // CDPATH would make cd print the folder into $here.
    'here="$(CDPATH= cd -- "$(dirname -- "$self")" && pwd -P)"',
    'exec "$here/node" "$here/../lib/apb.mjs" "$@"',
    "",
  ].join("\n");
}

/** Writes bin/apb into a bundle folder. */
export function writeLauncher(out) {
  writeFileSync(join(out, "bin", "apb"), launcherScript());
  chmodSync(join(out, "bin", "apb"), 0o755);
}

function need(path, hint) {
  if (!existsSync(path)) {
    console.error(`apb bundle: ${path.slice(root.length)} is missing; ${hint}`);
    process.exit(1);
  }
}

async function main(args) {
  const out = resolve(args.find((a) => !a.startsWith("--")) ?? join(root, "bundle"));
  // Loaded here, so a test can import launcherScript() without the build tools.
  const { build } = await import("esbuild");
  need(from("apps", "cli", "dist", "bin.js"), "run `npm run build` first");
  need(from("packages", "planner", "wasm", "apb_plan.wasm"), "run `npm run build` first");
  const addon = readdirSync(from("packages", "native")).filter((f) => f.endsWith(".node"));
  if (addon.length === 0) need(from("packages", "native", "apb-native.node"), "run `npm run build` first");

  rmSync(out, { recursive: true, force: true });
  for (const dir of ["bin", "lib", "wasm", "kernels", "node_modules/@apb/native"]) mkdirSync(join(out, dir), { recursive: true });

  // One ES module with its dependencies inside; the addon stays a package because it finds
  // its .node file next to its own loader.
  async function bundleModule(entry, outfile) {
    await build({
      entryPoints: [entry],
      outfile,
      bundle: true,
      platform: "node",
      format: "esm",
      target: "node20",
      external: ["@apb/native"],
      // Bundled CommonJS dependencies call require(); give the ES module one.
      banner: { js: 'import { createRequire as __apbRequire } from "node:module"; const require = __apbRequire(import.meta.url);' },
      logLevel: "warning",
    });
  }

  await bundleModule(from("apps", "cli", "dist", "bin.js"), join(out, "lib", "apb.mjs"));
  copyFileSync(from("packages", "planner", "wasm", "apb_plan.wasm"), join(out, "wasm", "apb_plan.wasm"));
  // The web page `apb serve` serves at / (it looks for web/ beside lib/), when it is built.
  if (existsSync(from("apps", "web", "dist", "index.html"))) cpSync(from("apps", "web", "dist"), join(out, "web"), { recursive: true });
  else console.warn("no web page in the bundle: apps/web/dist is not built (npm run build -w @apb/web)");
  for (const f of ["index.js", "testing.js", "binding.js", "package.json", ...addon]) copyFileSync(from("packages", "native", f), join(out, "node_modules", "@apb", "native", f));
  if (existsSync(from("cuda", "build"))) cpSync(from("cuda", "build"), join(out, "kernels"), { recursive: true });
  // The GPU checks: Python ones as they are; Node ones bundled like the CLI (they import the
  // runtime and the planner), the addon staying a package.
  mkdirSync(join(out, "test", "gpu"), { recursive: true });
  for (const entry of readdirSync(from("test", "gpu"), { withFileTypes: true })) {
    if (!entry.isFile()) continue; // e.g. Python's __pycache__
    const f = entry.name;
    if (!f.endsWith(".mjs")) {
      copyFileSync(from("test", "gpu", f), join(out, "test", "gpu", f));
      continue;
    }
    await bundleModule(from("test", "gpu", f), join(out, "test", "gpu", f));
  }

  // The benchmarks that drive the CLI from outside (apb serve under load), with their
  // dependencies inside: run as `bin/node bench/X.mjs --cli bin/apb --out DIR`.
  mkdirSync(join(out, "bench"), { recursive: true });
  await bundleModule(from("apps", "cli", "bench", "serve-load.mjs"), join(out, "bench", "serve-load.mjs"));

  copyFileSync(process.execPath, join(out, "bin", "node"));
  chmodSync(join(out, "bin", "node"), 0o755);
  writeLauncher(out);

  if (args.includes("--xz")) {
    const archive = `${out}.tar.xz`;
    const r = spawnSync("tar", ["-cJf", archive, "-C", dirname(out), out.slice(dirname(out).length + 1)], { stdio: "inherit", env: { ...process.env, XZ_OPT: "-6 -T0" } });
    if (r.status !== 0) process.exit(1);
    console.log(`apb bundle: ${archive}`);
  }
  console.log(`apb bundle: ${out} (run ${join(out, "bin", "apb")} --help)`);
}

/** Run as a script (node scripts/bundle.mjs), not imported by a test for launcherScript(). */
function isScript() {
  try {
    return realpathSync(process.argv[1] ?? "") === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}

if (isScript()) await main(process.argv.slice(2));
