// Puts the planner's wasm module inside this package, so Node and browser bundlers find it
// next to the code (new URL("../wasm/apb_plan.wasm", import.meta.url)).
import { copyFileSync, existsSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
let source;
try {
  source = require.resolve("@apb/plan-core/apb_plan.wasm");
} catch {
  source = join(here, "..", "..", "..", "crates", "apb-plan", "pkg", "apb_plan.wasm");
}
if (!existsSync(source)) {
  console.error("@apb/planner: apb_plan.wasm is missing; build crates/apb-plan first (npm run build)");
  process.exit(1);
}
const out = join(here, "..", "wasm");
mkdirSync(out, { recursive: true });
copyFileSync(source, join(out, "apb_plan.wasm"));
