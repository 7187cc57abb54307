// Builds the static page into dist/: the bundled script, index.html, the styles and the
// planner's wasm module beside them (the page loads it by a URL relative to itself).
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = fileURLToPath(new URL("..", import.meta.url));
const dist = `${root}dist`;
rmSync(dist, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });

await build({
  entryPoints: [`${root}src/main.ts`],
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  minify: true,
  sourcemap: true,
  // The planner reads its wasm from disk only in Node; that branch never runs in the page.
  external: ["node:*"],
  outfile: `${dist}/main.js`,
  logLevel: "warning",
});

const require = createRequire(import.meta.url);
copyFileSync(require.resolve("@apb/planner/apb_plan.wasm"), `${dist}/apb_plan.wasm`);
copyFileSync(`${root}index.html`, `${dist}/index.html`);
copyFileSync(`${root}src/styles.css`, `${dist}/styles.css`);
console.log(`built ${dist}`);
