// @apb/planner in a real browser: the same package, loaded as plain ES modules with an
// import map, fetching its wasm module over HTTP.
import { chromium, type Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CHROMIUM, CHROMIUM_ARGS, serveRepo } from "./browser.js";

const PAGE = `<!doctype html>
<script type="importmap">
{ "imports": { "@apb/planner": "/packages/planner/dist/index.js", "@apb/errors": "/packages/errors/dist/index.js", "zod": "/node_modules/zod/index.js" } }
</script>
<script type="module">
  import * as planner from "@apb/planner";
  window.planner = planner;
  window.ready = true;
</script>`;

let browser: Browser;
let server: Awaited<ReturnType<typeof serveRepo>>;

beforeAll(async () => {
  server = await serveRepo({ "/": PAGE });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

describe("@apb/planner in Chromium", () => {
  it("plans, compares and rejects bad input as it does in Node", async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(server.url);
    await page.waitForFunction(() => (window as unknown as { ready?: boolean }).ready === true);
    const result = await page.evaluate(async () => {
      const p = (window as unknown as { planner: typeof import("@apb/planner") }).planner;
      const plan = await p.plan({ model: "llama-3.1-8b", contextTokens: 131072, hosts: 8 });
      const comparison = await p.compare({ model: "llama-3.1-8b", contextTokens: 131072, hosts: 8 });
      let error = null;
      try {
        await p.plan({ model: "llama-3.1-8b", contextTokens: 131072, hosts: 8, passingTokens: 20000 });
      } catch (e) {
        const pe = e as InstanceType<typeof p.PlannerError>;
        error = { code: pe.code, path: pe.path, isPlannerError: pe instanceof p.PlannerError };
      }
      return { anchor: plan.anchorTokens, passing: plan.passingTokens, hosts: plan.hostPlans.length, strategies: comparison.strategies.length, error };
    });
    expect(errors).toEqual([]);
    expect(result).toEqual({
      anchor: 4096,
      passing: 2048,
      hosts: 8,
      strategies: 6,
      error: { code: "OUT_OF_RANGE", path: "passingTokens", isPlannerError: true },
    });
  });
});
