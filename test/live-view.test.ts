// The live view in real Chromium against a real group: `apb serve --workers remote` (whose
// control plane the page watches) and two `apb worker` processes on the CPU with a tiny
// model. The page is first the live view bundled with esbuild and mounted alone, with a planFor
// that plans with @apb/planner for the tiny model's shape; then the page apb serve serves at /.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { writeTinyModel } from "@apb/runtime/testing";
import { build } from "esbuild";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CHROMIUM, CHROMIUM_ARGS } from "./browser.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const BIN = join(ROOT, "apps", "cli", "dist", "bin.js");
const TOKEN = "live-view-test-token";
const LAYERS = 6;
/** Screenshots go here (ignored by git) to be looked at. */
const OUTPUT = join(ROOT, "test", "test-output");

const ENTRY = `
import { plan, modelFromHfConfig } from "@apb/planner";
import { mountLiveView } from "../apps/web/src/live/view.ts";
const config = JSON.parse(document.getElementById("config").textContent);
const shape = modelFromHfConfig(config).shape;
const seen = (window.seen = []);
const root = document.getElementById("live");
window.view = mountLiveView(root, {
  planFor: (job) => plan({
    model: shape, contextTokens: job.contextTokens, queryTokens: job.queryTokens, prefixTokens: job.prefixTokens, hosts: job.hosts, strategy: job.strategy,
    ...(job.anchorTokens === null ? {} : { anchorTokens: job.anchorTokens }),
    ...(job.passingTokens === null ? {} : { passingTokens: job.passingTokens }),
    ...(job.balanced === null ? {} : { balanced: job.balanced }),
  }),
  watch: { initialRetryMs: 200, maxRetryMs: 1000, silenceMs: 5000 },
});
// Every text a host's layers cell showed, in order (a job's progress passes quickly).
new MutationObserver(() => {
  for (const row of root.querySelectorAll(".apb-live-progress tbody tr")) {
    const text = row.querySelector("[data-field=layers]").textContent.trim();
    const entry = row.dataset.rank + ": " + text;
    if (seen[seen.length - 1] !== entry) seen.push(entry);
  }
}).observe(root, { subtree: true, childList: true, characterData: true });
`;

const children = new Set<ChildProcess>();
function spawnApb(args: string[]): { child: ChildProcess; log: () => string } {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, LOG_LEVEL: "info", APB_TOKEN: "" } });
  children.add(child);
  let log = "";
  child.stdout!.setEncoding("utf8").on("data", (d: string) => (log += d));
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (log += d));
  return { child, log: () => log };
}

async function waitFor<T>(what: string, check: () => T | undefined | Promise<T | undefined>, ms = 60_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

let scratch: string;
let modelDir: string;
let browser: Browser;
let pageServer: Server;
let pageUrl: string;

beforeAll(async () => {
  scratch = mkdtempSync(join(tmpdir(), "apb-live-view-"));
  modelDir = join(scratch, "tiny");
  await writeTinyModel(modelDir, { seed: 5, layers: LAYERS, maxPositions: 4096 });
  const bundled = await build({
    stdin: { contents: ENTRY, resolveDir: join(ROOT, "test"), sourcefile: "live-page.ts", loader: "ts" },
    bundle: true, format: "esm", platform: "browser", target: "es2022", external: ["node:*"], write: false, logLevel: "warning",
  });
  const script = bundled.outputFiles[0]!.text;
  const wasm = readFileSync(join(ROOT, "packages", "planner", "wasm", "apb_plan.wasm"));
  const config = readFileSync(join(modelDir, "config.json"), "utf8");
  const html = `<!doctype html><meta charset="utf-8"><title>live view</title><script type="application/json" id="config">${config}</script><div id="live"></div><script type="module" src="/live/page.js"></script>`;
  // The bundle reads the planner's wasm at ../wasm/apb_plan.wasm from itself.
  const files: Record<string, [string, string | Buffer]> = {
    "/live/": ["text/html", html],
    "/live/page.js": ["text/javascript", script],
    "/wasm/apb_plan.wasm": ["application/wasm", wasm],
  };
  pageServer = createServer((req, res) => {
    const file = files[new URL(req.url ?? "/", "http://x").pathname];
    if (!file) return void res.writeHead(404).end();
    res.writeHead(200, { "content-type": file[0] }).end(file[1]);
  });
  await new Promise<void>((resolve) => pageServer.listen(0, "127.0.0.1", resolve));
  pageUrl = `http://127.0.0.1:${(pageServer.address() as AddressInfo).port}/live/`;
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
});

afterAll(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  await browser?.close();
  await new Promise((resolve) => pageServer?.close(resolve));
  rmSync(scratch, { recursive: true, force: true });
});

async function watch(page: Page, address: string, token: string): Promise<void> {
  await page.getByLabel("Coordinator address", { exact: true }).fill(address);
  await page.getByLabel("Token", { exact: true }).fill(token);
  await page.getByRole("button", { name: "Watch" }).click();
}

const connectionText = (page: Page) => page.locator(".apb-live-connection").textContent();

describe("the live view", () => {
  it("shows a coordinator's hosts with their pids, a job's progress per host and its end, and names a dead coordinator", async () => {
    const server = spawnApb(["serve", "--port", "0", "--model", modelDir, "--model-name", "tiny", "--hosts", "2", "--workers", "remote", "--listen", "127.0.0.1:0", "--token", TOKEN]);
    const coordinator = await waitFor("the control plane's address in the log", () => /control plane listening on (ws:\/\/\S+?);/.exec(server.log())?.[1]);
    const httpUrl = await waitFor("apb serve's URL in the log", () => /"url":"(http:\/\/[^"]+)"/.exec(server.log())?.[1]);
    const workers = [0, 1].map(() => spawnApb(["worker", "--coordinator", coordinator, "--token", TOKEN, "--exit-with-coordinator"]));

    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(pageUrl);

    // A wrong token is refused and not retried.
    await watch(page, coordinator, "not-the-token");
    await waitFor("the refusal", async () => ((await connectionText(page))?.includes("UNAUTHORIZED") ? true : undefined), 20_000);
    expect(await connectionText(page)).toMatch(/refused this page: UNAUTHORIZED: .*Not retrying/);

    await watch(page, coordinator, TOKEN);
    const pids = workers.map((w) => String(w.child.pid)).sort();
    try {
      await waitFor("both workers in the hosts table, joined", async () => {
        const rows = await page.locator(".apb-live-hosts tbody tr").evaluateAll((trs) =>
          trs.map((tr) => Object.fromEntries(Array.from(tr.querySelectorAll("td")).map((td) => [td.dataset.field, td.textContent]))),
        );
        const joined = rows.filter((r) => r.state === "joined");
        return joined.length === 2 && joined.map((r) => r.pid).sort().join() === pids.join() ? rows : undefined;
      }, 120_000);
    } catch (e) {
      throw new Error(`${String(e)}\nserver:\n${server.log()}\nworkers:\n${workers.map((w) => w.log()).join("\n")}`);
    }
    const rows = await page.locator(".apb-live-hosts tbody tr").allTextContents();
    expect(rows.join("\n")).toMatch(/cpu/);
    expect(await connectionText(page)).toBe(`Watching ${coordinator}.`);
    expect(await page.locator(".apb-live-group").textContent()).toMatch(/formed; 2 hosts connected; idle; 0 queued/);

    // A job through the server: the view shows it start, each host's layers, and its end.
    const document = Array.from({ length: 40 }, (_, i) => `Line ${i}: the bridge of Quillon is made of grey stone.`).join(" ");
    const answer = await fetch(`${httpUrl}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "tiny", messages: [{ role: "user", content: `${document}\n\nWhat is the bridge made of?` }], max_tokens: 4 }),
    });
    expect(answer.status).toBe(200);
    await waitFor("the job to end in the view", async () => ((await page.locator(".apb-live-job").getAttribute("data-outcome")) === "done" ? true : undefined), 30_000);
    const seen = await page.evaluate(() => (window as unknown as { seen: string[] }).seen);
    for (const rank of [0, 1]) {
      expect(seen, `host ${rank}'s layers`).toContainEqual(expect.stringMatching(new RegExp(`^${rank}: \\d+ of ${LAYERS} layers$`)));
      expect(seen).toContainEqual(`${rank}: ${LAYERS} of ${LAYERS} layers`);
    }
    expect(await page.locator(".apb-live-job h3").textContent()).toMatch(/^Job \d+: apb on 2 hosts, \d+ context tokens \(\d+ prefix\) \+ \d+ query/);
    expect(await page.locator(".apb-live-outcome").textContent()).toMatch(/^Done in [\d.]+ m?s/);
    await waitFor("the prediction", async () => ((await page.locator(".apb-live-plan").textContent())?.startsWith("Predicted prefill") ? true : undefined), 10_000);
    // The planner's layout for the job's sizes is the one the hosts ran.
    const ran = /ran with (blocks of \d+, anchor \d+, passing \d+)/.exec((await page.locator(".apb-live-outcome").textContent()) ?? "")?.[1];
    expect(ran).toBeDefined();
    expect(await page.locator(".apb-live-plan").textContent()).toContain(`planned ${ran!}`);
    const perHost = await page.locator(".apb-live-progress tbody tr").evaluateAll((trs) =>
      trs.map((tr) => Object.fromEntries(Array.from(tr.querySelectorAll("td")).map((td) => [td.dataset.field, td.textContent?.trim()]))),
    );
    expect(perHost).toHaveLength(2);
    for (const row of perHost) {
      expect(row.layers).toBe("all layers");
      expect(row.predicted).toMatch(/^[\d.]+ m?s$/);
      expect(row.measured).toMatch(/^[\d.]+ m?s$/);
    }
    const bars = await page.locator(".apb-live-progress progress").evaluateAll((ps) => ps.map((p) => (p as HTMLProgressElement).value));
    expect(bars).toEqual([1, 1]);

    mkdirSync(OUTPUT, { recursive: true });
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.screenshot({ path: join(OUTPUT, "live-view-1280x800.png"), fullPage: true });

    // The page apb serve serves at / (apps/web's build) carries the same view: it watches too.
    const served = await browser.newPage();
    served.on("pageerror", (e) => errors.push(`served page: ${e.message}`));
    const home = await served.goto(`${httpUrl}/`);
    expect(home?.status(), "GET / of apb serve: build the page with npm run build -w @apb/web").toBe(200);
    await watch(served, coordinator, TOKEN);
    await waitFor("the served page's hosts table", async () => {
      const text = (await served.locator(".apb-live-hosts tbody").textContent()) ?? "";
      return pids.every((pid) => text.includes(pid)) ? true : undefined;
    }, 30_000);
    const second = await fetch(`${httpUrl}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "tiny", messages: [{ role: "user", content: `${document}\n\nWho skates under the bridge?` }], max_tokens: 2 }),
    });
    expect(second.status).toBe(200);
    await waitFor("the second job to end in the served page", async () => ((await served.locator(".apb-live-job").getAttribute("data-outcome")) === "done" ? true : undefined), 30_000);
    expect(await served.locator(".apb-live-progress tbody tr").count()).toBe(2);
    await served.setViewportSize({ width: 1280, height: 800 });
    await served.locator(".apb-live").screenshot({ path: join(OUTPUT, "live-view-served-1280.png") });

    // The coordinator goes away: the view says so and keeps trying.
    server.child.kill("SIGTERM");
    await waitFor("the view to name the lost coordinator", async () => {
      const text = (await connectionText(page)) ?? "";
      return /cannot reach the coordinator at ws:\/\/127\.0\.0\.1:\d+/.test(text) && /Retrying in/.test(text) ? text : undefined;
    }, 30_000);
    expect(errors).toEqual([]);
  });
});
