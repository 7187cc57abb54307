import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { statusOf } from "./fake-group.test-helper.js";
import { API_KEY, chatBody, closeServers, startServer, tinyModel, until, type TinyModel } from "./server.test-helper.js";

interface Health {
  status: string;
  message: string;
  hosts: { expected: number; up: number; missing: number[]; list: { rank: number | null; state: string; hostname: string; pid: number }[] };
  queue: { running: number; waiting: number };
}

let tiny: TinyModel;
beforeAll(async () => (tiny = await tinyModel()));
afterAll(async () => {
  await closeServers();
  tiny.remove();
});

describe("/health", () => {
  it("is 200 ready when the group has formed", async () => {
    const s = await startServer(tiny.dir);
    const res = await fetch(`${s.url}/health`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as Health;
    expect(body).toMatchObject({ status: "ready", hosts: { expected: 2, up: 2, missing: [] }, queue: { running: 0, waiting: 0 } });
    expect(body.hosts.list.map((h) => [h.rank, h.hostname, h.pid])).toEqual([
      [0, "node0", 1000],
      [1, "node1", 1001],
    ]);
  });

  it("is 503 unready naming a missing rank", async () => {
    const s = await startServer(tiny.dir);
    s.group.snapshot = statusOf({ worldSize: 2, formed: false, hosts: [{ rank: 0, state: "ready" }] });
    const res = await fetch(`${s.url}/health`);
    expect(res.status).toBe(503);
    const body = (await res.json()) as Health;
    expect(body).toMatchObject({ status: "unready", hosts: { expected: 2, up: 1, missing: [1] } });
    expect(body.message).toContain("host 1");
  });

  it("is 503 unready naming a rank whose host is still loading the model", async () => {
    const s = await startServer(tiny.dir);
    s.group.snapshot = statusOf({ worldSize: 3, formed: false, hosts: [{ rank: 0, state: "ready" }, { rank: 1, state: "loading" }, { rank: null, state: "loading" }] });
    const body = (await (await fetch(`${s.url}/health`)).json()) as Health;
    expect(body).toMatchObject({ status: "unready", hosts: { expected: 3, up: 1, missing: [1, 2] } });
    expect(body.message).toContain("hosts 1, 2");
    expect(body.message).toContain("loading");
  });
});

/** The value of the sample `name{labels}` in prom text, or null. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | null {
  for (const line of text.split("\n")) {
    const m = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...(m[2] ?? "").matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[3]);
  }
  return null;
}

describe("/metrics", () => {
  it("counts requests by route and outcome, and reports first-token times, each host's prefill, the queue and the hosts", async () => {
    const s = await startServer(tiny.dir, { apiKey: API_KEY, maxQueue: 0 });
    const auth = { authorization: `Bearer ${API_KEY}` };
    const route = "/v1/chat/completions";
    expect((await s.post(route, chatBody(), auth)).status).toBe(200);
    expect((await s.post(route, chatBody(), auth)).status).toBe(200);
    expect((await s.post(route, chatBody({ temperature: 3 }), auth)).status).toBe(400);
    expect((await s.post(route, chatBody())).status).toBe(401);
    s.group.next({ hold: true });
    const held = s.post(route, chatBody(), auth);
    await until("the held job runs", () => s.group.jobs[2]?.started === true);
    expect((await s.post(route, chatBody(), auth)).status).toBe(429);
    s.group.jobs[2]!.release();
    expect((await held).status).toBe(200);

    const scrape = async () => {
      const res = await fetch(`${s.url}/metrics`);
      expect(res.headers.get("content-type")).toMatch(/^text\/plain/);
      return res.text();
    };
    // Requests are counted when their connection is done with them, just after the client has the answer.
    await until("every request is counted", async () => sample(await scrape(), "apb_requests_total", { route, outcome: "ok" }) === 3);
    const text = await scrape();
    expect(sample(text, "apb_requests_total", { route, outcome: "client_error" })).toBe(1);
    expect(sample(text, "apb_requests_total", { route, outcome: "unauthorized" })).toBe(1);
    expect(sample(text, "apb_requests_total", { route, outcome: "busy" })).toBe(1);
    expect(sample(text, "apb_time_to_first_token_seconds_count")).toBe(3);
    expect(sample(text, "apb_host_prefill_seconds_count", { host: "0" })).toBe(3);
    expect(sample(text, "apb_host_prefill_seconds_sum", { host: "1" })).toBeCloseTo(3 * 0.11);
    expect(sample(text, "apb_queue_length")).toBe(0);
    expect(sample(text, "apb_hosts_up")).toBe(2);
    expect(sample(text, "apb_group_ready")).toBe(1);
    expect(sample(text, "apb_generated_tokens_total")).toBe(3 * s.group.tokens.length);
  });

  it("reports the hosts up and the queue as they are at the scrape", async () => {
    const s = await startServer(tiny.dir, { maxQueue: 2 });
    s.group.next({ hold: true });
    const first = s.post("/v1/chat/completions", chatBody());
    await until("the first job runs", () => s.group.jobs[0]?.started === true);
    const second = s.post("/v1/chat/completions", chatBody());
    await until("the second job is queued", () => s.group.jobs.length === 2);
    s.group.snapshot = statusOf({ worldSize: 2, formed: false, hosts: [{ rank: 1, state: "ready" }] });
    const text = await (await fetch(`${s.url}/metrics`)).text();
    expect(sample(text, "apb_queue_length")).toBe(1);
    expect(sample(text, "apb_hosts_up")).toBe(1);
    expect(sample(text, "apb_hosts_expected")).toBe(2);
    expect(sample(text, "apb_group_ready")).toBe(0);
    s.group.jobs[0]!.release();
    expect((await first).status).toBe(200);
    expect((await second).status).toBe(200);
  });
});
