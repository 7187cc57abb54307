// The ways a user starts apb besides `node apps/cli/dist/bin.js`: `npx apb` from the
// repository's root, and the bundle's bin/apb linked onto PATH.
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT } from "./cli.test-helper.js";

let dir: string;
beforeAll(() => {
  dir = realpathSync(mkdtempSync(join(tmpdir(), "apb-cli-launchers-")));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const npx = (cwd: string) => spawnSync("npx", ["--offline", "apb", "--version"], { cwd, encoding: "utf8", env: { ...process.env, npm_config_update_notifier: "false" } });

describe("npx apb from the repository's root", () => {
  it("runs the built CLI", () => {
    const r = npx(ROOT);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe("0.1.0");
  }, 60_000);

  it("runs it on a fresh clone too, where npm install linked no workspace bin (the CLI was not built yet)", () => {
    // The root's package.json beside the built apps, and no node_modules/.bin: the root's
    // own "bin" is what npx finds (without it npx asks the registry for a package "apb").
    const clone = join(dir, "clone");
    mkdirSync(clone);
    copyFileSync(join(ROOT, "package.json"), join(clone, "package.json"));
    symlinkSync(join(ROOT, "apps"), join(clone, "apps"));
    const r = npx(clone);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe("0.1.0");
  }, 60_000);
});

describe("the bundle's bin/apb", () => {
  it("finds the bundled node when it is reached through symlinks on PATH", async () => {
    const bundle = join(dir, "bundle");
    mkdirSync(join(bundle, "bin"), { recursive: true });
    mkdirSync(join(bundle, "lib"));
    // The bundle's layout with a real node, and a CLI that prints what it was given.
    symlinkSync(process.execPath, join(bundle, "bin", "node"));
    writeFileSync(join(bundle, "lib", "apb.mjs"), 'console.log(JSON.stringify({ cli: import.meta.url, args: process.argv.slice(2) }));\n');
    const { writeLauncher } = (await import(pathToFileURL(join(ROOT, "scripts", "bundle.mjs")).href)) as { writeLauncher(out: string): void };
    writeLauncher(bundle);
    // PATH/apb -> ../links/apb (relative) -> bundle/bin/apb (absolute).
    mkdirSync(join(dir, "path"));
    mkdirSync(join(dir, "links"));
    symlinkSync(join(bundle, "bin", "apb"), join(dir, "links", "apb"));
    symlinkSync(join("..", "links", "apb"), join(dir, "path", "apb"));
    const r = spawnSync("apb", ["plan", "--json"], { cwd: tmpdir(), encoding: "utf8", env: { PATH: `${join(dir, "path")}:/usr/bin:/bin` } });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ cli: pathToFileURL(join(bundle, "lib", "apb.mjs")).href, args: ["plan", "--json"] });
  });
});
