import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { closeServers, completionBody, startServer, tinyModel, type TinyModel } from "./server.test-helper.js";

let tiny: TinyModel;
beforeAll(async () => (tiny = await tinyModel()));
afterAll(async () => {
  await closeServers();
  tiny.remove();
});

describe("ApbServer.start", () => {
  it("listens on a free port of 127.0.0.1 with port 0, and says where in url", async () => {
    const s = await startServer(tiny.dir);
    expect(s.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(Number(new URL(s.url).port)).toBeGreaterThan(0);
    expect((await fetch(`${s.url}/health`)).status).toBe(200);
  });

  const bad: [string, Record<string, unknown>][] = [
    ["port", { port: 70_000 }],
    ["maxQueue", { maxQueue: -1 }],
    ["maxBodyBytes", { maxBodyBytes: 10 }],
    ["groupWaitMs", { groupWaitMs: 1.5 }],
    ["drainTimeoutMs", { drainTimeoutMs: -5 }],
    ["defaultMaxTokens", { defaultMaxTokens: 0 }],
  ];
  for (const [path, options] of bad) {
    it(`refuses a bad ${path} with INVALID_OPTIONS naming it`, async () => {
      await expect(startServer(tiny.dir, options)).rejects.toMatchObject({ code: "INVALID_OPTIONS", path });
    });
  }

  it("takes the server's strategy for requests that do not name one", async () => {
    const s = await startServer(tiny.dir, { strategy: "ring" });
    expect((await s.post("/v1/completions", completionBody())).status).toBe(200);
    expect(s.group.jobs[0]!.spec.strategy).toBe("ring");
  });
});
