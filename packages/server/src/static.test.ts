import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { API_KEY, closeServers, startServer, tinyModel, type ErrorEnvelope, type Running, type TinyModel } from "./server.test-helper.js";

let tiny: TinyModel;
let scratch: string;
let s: Running;
const WASM = Buffer.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]);

/** A GET with the path sent exactly as written (fetch would normalize "..": a raw client does not). */
function rawGet(url: string, path: string): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request({ hostname, port, path, method: "GET" }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    req.on("error", reject);
    req.end();
  });
}

beforeAll(async () => {
  tiny = await tinyModel();
  scratch = mkdtempSync(join(tmpdir(), "apb-static-test-"));
  const web = join(scratch, "web");
  mkdirSync(join(web, "assets"), { recursive: true });
  writeFileSync(join(web, "index.html"), "<!doctype html><title>apb</title><script type=module src=main.js></script>");
  writeFileSync(join(web, "main.js"), "console.log('apb');");
  writeFileSync(join(web, "apb_plan.wasm"), WASM);
  writeFileSync(join(web, "assets", "styles.css"), "body{}");
  writeFileSync(join(web, ".secret"), "dotfile");
  writeFileSync(join(scratch, "secret.txt"), "outside the web root");
  s = await startServer(tiny.dir, { apiKey: API_KEY, webRoot: web });
});
afterAll(async () => {
  await closeServers();
  tiny.remove();
  rmSync(scratch, { recursive: true, force: true });
});

describe("the web page", () => {
  it("GET / serves index.html as HTML, without the API key", async () => {
    const res = await fetch(`${s.url}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/html/);
    expect(await res.text()).toContain("<title>apb</title>");
    expect((await fetch(`${s.url}/index.html`)).status).toBe(200);
  });

  it("serves the assets with their content types: application/wasm for the planner's module", async () => {
    const wasm = await fetch(`${s.url}/apb_plan.wasm`);
    expect(wasm.status).toBe(200);
    expect(wasm.headers.get("content-type")).toBe("application/wasm");
    expect(Buffer.from(await wasm.arrayBuffer())).toEqual(WASM);
    expect((await fetch(`${s.url}/main.js`)).headers.get("content-type")).toMatch(/^(text|application)\/javascript/);
    expect((await fetch(`${s.url}/assets/styles.css`)).headers.get("content-type")).toMatch(/^text\/css/);
  });

  it("refuses paths that leave the web root, however they are spelled, and dotfiles", async () => {
    for (const path of ["/../secret.txt", "/%2e%2e/secret.txt", "/assets/..%2f..%2fsecret.txt", "/%2e%2e%2fsecret.txt", "/..%5csecret.txt", "/.secret"]) {
      const res = await rawGet(s.url, path);
      expect(res.status, path).toBeGreaterThanOrEqual(400);
      expect(res.body, path).not.toContain("outside the web root");
      expect(res.body, path).not.toContain("dotfile");
    }
  });

  it("a missing asset is the API's 404 envelope, and /v1/ still needs the key", async () => {
    const res = await fetch(`${s.url}/nothing-here.js`);
    expect(res.status).toBe(404);
    expect(((await res.json()) as ErrorEnvelope).error.code).toBe("UNKNOWN_ROUTE");
    expect((await fetch(`${s.url}/v1/models`)).status).toBe(401);
    const unknown = await fetch(`${s.url}/v1/nothing`);
    expect(unknown.status).toBeGreaterThanOrEqual(401);
  });

  it("without a built page, GET / is a 404 saying how to build it", async () => {
    for (const webRoot of [null, join(scratch, "not-built")]) {
      const bare = await startServer(tiny.dir, { webRoot });
      const res = await fetch(`${bare.url}/`);
      expect(res.status).toBe(404);
      const body = (await res.json()) as ErrorEnvelope;
      expect(body.error.code).toBe("UNKNOWN_ROUTE");
      expect(body.error.message).toContain("npm run build -w @apb/web");
      expect((await fetch(`${bare.url}/health`)).status).toBe(200);
    }
  });
});
