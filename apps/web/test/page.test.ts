// The built page (dist/) in a real Chromium, served by the page's own static server, with
// every request to another origin aborted and recorded.
import { mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { serve } from "../scripts/serve.mjs";

const CHROMIUM = process.env.APB_CHROMIUM ?? "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];
const OUTPUT = fileURLToPath(new URL("../test-output/", import.meta.url));

let browser: Browser;
let server: Awaited<ReturnType<typeof serve>>;

beforeAll(async () => {
  server = await serve({ port: 0 });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  mkdirSync(OUTPUT, { recursive: true });
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

interface Opened {
  page: Page;
  /** Requests to anywhere but the page's own origin (all aborted). */
  foreign: string[];
  errors: string[];
}

async function open(search = "", viewport = { width: 1280, height: 800 }): Promise<Opened> {
  const page = await browser.newPage({ viewport });
  const origin = new URL(server.url).origin;
  const foreign: string[] = [];
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
  });
  await page.route("**/*", (route) => {
    const url = route.request().url();
    if (new URL(url).origin === origin) return route.continue();
    foreign.push(url);
    return route.abort();
  });
  await page.goto(`${server.url}${search}`);
  await page.waitForFunction(() => Number(document.body.dataset.renders ?? 0) >= 1);
  return { page, foreign, errors };
}

const renders = (page: Page) => page.evaluate(() => Number(document.body.dataset.renders ?? 0));

/** Sets a field's value as typing would, and waits for the page to redraw. */
async function setField(page: Page, id: string, value: string): Promise<void> {
  const before = await renders(page);
  await page.fill(`#${id}`, value);
  // What leaving the field does: redraw now rather than after the typing pause.
  await page.dispatchEvent(`#${id}`, "change");
  await page.waitForFunction((n) => Number(document.body.dataset.renders) > n, before);
}

async function selectField(page: Page, id: string, value: string): Promise<void> {
  const before = await renders(page);
  await page.selectOption(`#${id}`, value);
  await page.waitForFunction((n) => Number(document.body.dataset.renders) > n, before);
}

const hostRows = (page: Page) => page.locator("#layout .host-row").count();
const errorText = (page: Page, field: string) => page.locator(`#error-${field}`).textContent();
const tableRow = (page: Page, strategy: string) => page.locator(`#table tr[data-strategy="${strategy}"]`).innerText();

describe("the planner page in Chromium", () => {
  it("loads and draws with no request beyond its own origin and no page errors", async () => {
    const { page, foreign, errors } = await open();
    expect(await page.evaluate(() => document.body.dataset.status)).toBe("ok");
    expect(await hostRows(page)).toBe(8);
    expect(await page.locator("#timeline .panel").count()).toBe(6);
    expect(await page.locator("#timeline .panel svg").count()).toBe(6);
    expect(await page.locator("#memory .memory-row").count()).toBe(8);
    expect(await page.locator("#table tbody tr").count()).toBe(6);
    expect(await page.locator("#timeline .panel[data-strategy=apb] .timeline-row.slowest").count()).toBe(1);
    expect(await page.locator("#layout svg .seg-query").count()).toBe(7); // every anchored host embeds the query
    expect(await page.locator("#layout svg .seg-passing").count()).toBe(28); // host h receives h passing blocks
    expect(await page.locator("#live").count()).toBe(1);
    expect(await page.locator("#live form input").count()).toBeGreaterThanOrEqual(2); // the live view is mounted, connecting to nothing yet
    expect(await page.inputValue("#context")).toBe("128K");
    expect(await page.getAttribute("#anchor", "placeholder")).toBe("default 4096");
    expect(await page.getAttribute("#passing", "placeholder")).toBe("default 2048");
    expect(foreign).toEqual([]);
    expect(errors).toEqual([]);
    await page.close();
  });

  it("redraws the rows and the table when hosts or length change, and keeps the URL in step", async () => {
    const { page, errors } = await open();
    const before = await tableRow(page, "apb");
    await setField(page, "hosts", "4");
    expect(await hostRows(page)).toBe(4);
    expect(await tableRow(page, "apb")).not.toBe(before);
    expect(await tableRow(page, "apb")).toMatch(/^apb\s+4\s/);
    expect(new URL(page.url()).searchParams.get("hosts")).toBe("4");
    const at4 = await tableRow(page, "apb");
    await setField(page, "context", "1M");
    expect(await tableRow(page, "apb")).not.toBe(at4);
    expect(await page.locator("#table caption").innerText()).toContain("1M tokens, 4 hosts");
    expect(new URL(page.url()).searchParams.get("context")).toBe("1M");
    await setField(page, "hosts", "16");
    expect(await hostRows(page)).toBe(16);
    expect(errors).toEqual([]);
    await page.close();
  });

  it("shows a bad length beside its field, and the planner's refusal beside the field it names", async () => {
    const { page, errors } = await open();
    await setField(page, "context", "abc");
    expect(await errorText(page, "context")).toContain('"abc" is not a number of tokens');
    expect(await page.getAttribute("#context", "aria-invalid")).toBe("true");
    expect(await hostRows(page)).toBe(8); // the last valid drawing stays
    await setField(page, "context", "0");
    expect(await errorText(page, "context")).toMatch(/at least 1/);
    // More hosts than tokens: the planner refuses, naming hosts.
    await setField(page, "context", "4");
    expect(await errorText(page, "context")).toBe("");
    expect(await errorText(page, "hosts")).toContain("exceeds contextTokens");
    expect(await page.getAttribute("#hosts", "aria-invalid")).toBe("true");
    // A passing block longer than the planner allows: beside passing.
    await setField(page, "context", "128K");
    await setField(page, "passing", "20000");
    expect(await errorText(page, "passing")).toContain("passingTokens");
    await setField(page, "passing", "");
    expect(await page.evaluate(() => document.body.dataset.status)).toBe("ok");
    expect(await errorText(page, "passing")).toBe("");
    // A pasted config.json the planner cannot read: beside the textarea.
    await selectField(page, "model", "custom");
    expect(await errorText(page, "config")).toContain("paste a model's config.json");
    await setField(page, "config", '{"model_type": "gpt2"}');
    expect(await errorText(page, "config")).toContain("config.json");
    await setField(page, "config", JSON.stringify({ model_type: "llama", num_hidden_layers: 16, hidden_size: 2048, num_attention_heads: 32, num_key_value_heads: 8, intermediate_size: 8192, vocab_size: 128256, torch_dtype: "bfloat16" }));
    expect(await page.evaluate(() => document.body.dataset.status)).toBe("ok");
    // Custom hardware figures: a bad one beside its own field.
    await selectField(page, "hardware", "custom");
    expect(await page.inputValue("#hw-memoryGiB")).toBe("79");
    await setField(page, "hw-linkGBs", "fast");
    expect(await errorText(page, "hw-linkGBs")).toContain('"fast" is not a number');
    await setField(page, "hw-linkGBs", "45");
    await setField(page, "hw-memoryGiB", "2");
    expect(await page.locator("#memory .note").innerText()).toContain("does not fit");
    expect(errors).toEqual([]);
    await page.close();
  });

  it("restores the form and the drawings from a URL with state", async () => {
    const search = "?model=yi-34b-200k&context=192K&query=512&hosts=6&hardware=h200-nvlink&strategy=star&balanced=1";
    const { page, errors } = await open(search);
    expect(await page.inputValue("#model")).toBe("yi-34b-200k");
    expect(await page.inputValue("#context")).toBe("192K");
    expect(await page.inputValue("#query")).toBe("512");
    expect(await page.inputValue("#hosts")).toBe("6");
    expect(await page.inputValue("#hardware")).toBe("h200-nvlink");
    expect(await page.inputValue("#strategy")).toBe("star");
    expect(await page.isChecked("#balanced")).toBe(true);
    expect(await hostRows(page)).toBe(6);
    expect(await page.locator("#table tr.selected").getAttribute("data-strategy")).toBe("star");
    expect(await page.locator("#table caption").innerText()).toContain("192K tokens, 6 hosts");
    // Custom hardware round-trips too.
    const custom = await open("?hardware=custom&matmul=500&attention=250&hbm=2000&link=100&latency=5&memory=40&hosts=2");
    expect(await custom.page.inputValue("#hw-memoryGiB")).toBe("40");
    expect(await custom.page.isVisible("#hw-memoryGiB")).toBe(true);
    expect(await custom.page.locator("#memory .limit-label").textContent()).toBe("device 40.0 GiB");
    expect(await hostRows(custom.page)).toBe(2);
    expect([...errors, ...custom.errors]).toEqual([]);
    await page.close();
    await custom.page.close();
  });

  it("applies recommend's settings to the form", async () => {
    // The even split: the default (balanced blocks) is already what recommend finds here.
    const { page, errors } = await open("?hosts=8&balanced=0");
    const button = page.locator("#apply-recommendation");
    expect(await button.isEnabled()).toBe(true);
    const settings = await page.locator("#recommendation dl").innerText();
    expect(settings).toMatch(/Balanced\s+yes/);
    const before = await renders(page);
    await button.click();
    await page.waitForFunction((n) => Number(document.body.dataset.renders) > n, before);
    expect(await page.isChecked("#balanced")).toBe(true);
    expect(await page.inputValue("#anchor")).toBe("4096");
    expect(await page.inputValue("#passing")).toBe("2048");
    expect(new URL(page.url()).searchParams.get("balanced")).toBe(null); // the default again
    expect(await button.isEnabled()).toBe(false); // the form now holds them
    expect(await page.locator("#layout-summary").innerText()).toContain("balanced blocks");
    expect(errors).toEqual([]);
    await page.close();
  });

  it("labels every control and reaches each visible one with Tab", async () => {
    const { page } = await open("?model=custom&hardware=custom");
    const controls = await page.evaluate(() =>
      [...document.querySelectorAll<HTMLInputElement>("#form input, #form select, #form textarea, #form button")].map((el) => ({
        id: el.id,
        label: [...(el.labels ?? [])].map((l) => l.textContent?.trim()).join(" "),
        visible: el.offsetParent !== null,
      })),
    );
    expect(controls.length).toBeGreaterThanOrEqual(16);
    for (const c of controls) expect(c.label, `#${c.id} has a label`).not.toBe("");
    const names = await Promise.all(controls.map((c) => page.locator(`#${c.id}`).evaluate((el) => (el as HTMLInputElement).labels?.[0]?.textContent ?? "")));
    expect(names.every((n) => n.length > 0)).toBe(true);
    const reached = new Set<string>();
    await page.locator("body").focus();
    for (let i = 0; i < 40; i++) {
      await page.keyboard.press("Tab");
      const id = await page.evaluate(() => document.activeElement?.id ?? "");
      if (id) reached.add(id);
    }
    for (const c of controls.filter((c) => c.visible)) expect(reached.has(c.id), `#${c.id} reached with Tab`).toBe(true);
    const live = await page.evaluate(() => [...document.querySelectorAll<HTMLInputElement>("#live input")].map((el) => el.labels?.[0]?.textContent ?? ""));
    expect(live.length).toBeGreaterThan(0);
    expect(live.every((l) => l.length > 0)).toBe(true);
    // Accessible names as a screen reader gets them.
    const snapshot = await page.locator("#form").ariaSnapshot();
    for (const name of ["Model preset", "Context length", "Query length", "Hosts", "Hardware", "Strategy", "Anchor tokens", "Passing tokens", "Balanced block sizes", "Hugging Face config.json", "Device memory (GiB)"]) {
      expect(snapshot).toContain(name);
    }
    await page.close();
    // On a valid page, Tab goes on from the form to recommend's button (enabled: the even
    // split is not what recommend finds).
    const valid = await open("?balanced=0");
    await valid.page.locator("body").focus();
    let found = false;
    for (let i = 0; i < 30 && !found; i++) {
      await valid.page.keyboard.press("Tab");
      found = (await valid.page.evaluate(() => document.activeElement?.id)) === "apply-recommendation";
    }
    expect(found).toBe(true);
    await valid.page.close();
  });

  it("draws a large group with the middle hosts left out, and says so", async () => {
    const { page, errors } = await open("?context=1M&hosts=200");
    expect(await page.evaluate(() => document.body.dataset.status)).toBe("ok");
    expect(await hostRows(page)).toBe(64);
    expect(await page.locator("#layout").innerText()).toContain("136 hosts not drawn");
    expect(await page.locator('#layout .host-row[data-host="199"]').count()).toBe(1);
    expect(await page.locator("#timeline .panel[data-strategy=apb] .timeline-row").count()).toBe(64);
    // recommend over 200 hosts runs on request, not with every change.
    expect(await page.locator("#apply-recommendation").count()).toBe(0);
    await page.click("#run-recommendation");
    await page.waitForSelector("#apply-recommendation", { timeout: 30_000 });
    expect(await page.locator("#recommendation").innerText()).toContain("up to 200 hosts");
    await page.screenshot({ path: `${OUTPUT}large-1280x800-full.png`, fullPage: true });
    expect(errors).toEqual([]);
    await page.close();
  });

  it("writes screenshots at 1280x800 and 390x844", async () => {
    for (const [name, viewport] of [["desktop-1280x800", { width: 1280, height: 800 }], ["phone-390x844", { width: 390, height: 844 }]] as const) {
      const { page, errors } = await open("", viewport);
      await page.screenshot({ path: `${OUTPUT}${name}.png` });
      await page.screenshot({ path: `${OUTPUT}${name}-full.png`, fullPage: true });
      // Nothing wider than the viewport (a page that scrolls sideways cuts text off).
      expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(viewport.width);
      for (const section of ["layout", "timeline", "memory", "table", "recommendation"]) {
        await page.locator(`#${section}`).screenshot({ path: `${OUTPUT}${name}-${section}.png` });
      }
      expect(errors).toEqual([]);
      await page.close();
    }
    const { page } = await open("?context=abc&hosts=4");
    expect(await page.locator("#status").innerText()).toContain("Nothing to draw yet");
    await page.screenshot({ path: `${OUTPUT}error-1280x800.png` });
    await page.close();
    const custom = await open("?model=custom&hardware=custom&hosts=4000", { width: 390, height: 844 });
    await custom.page.screenshot({ path: `${OUTPUT}phone-custom-390x844-full.png`, fullPage: true });
    await custom.page.close();
  });
});
