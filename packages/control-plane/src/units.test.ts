import { describe, expect, it } from "vitest";
import { Backoff } from "./backoff.js";
import { hostLabel, listed, seconds } from "./describe.js";
import { toErrorData } from "./errors.js";
import { FakeExecutor } from "./fake-executor.test-helper.js";
import { ControlPlaneError, Coordinator, CoordinatorClient, HostAgent } from "./index.js";
import { assignRank } from "./ranks.js";
import { tokensMatch } from "./secret.js";

describe("assignRank", () => {
  it("takes the hint when in range and free, else the lowest free rank, else none (standby)", () => {
    expect(assignRank(2, [null, null, null])).toBe(2);
    expect(assignRank(2, [null, null, "x"])).toBe(0);
    expect(assignRank(9, ["x", null, null])).toBe(1);
    expect(assignRank(undefined, ["x", "y", null])).toBe(2);
    expect(assignRank(0, ["x", "y"])).toBeNull();
  });
});

describe("tokensMatch", () => {
  it("compares tokens of any length without throwing (both sides are hashed to 32 bytes)", () => {
    expect(tokensMatch("s3cret", "s3cret")).toBe(true);
    expect(tokensMatch("s3cre", "s3cret")).toBe(false);
    expect(tokensMatch("", "s3cret")).toBe(false);
    expect(tokensMatch("x".repeat(4096), "s3cret")).toBe(false);
  });
});

describe("Backoff", () => {
  it("doubles from initialMs to maxMs, each delay in the upper half of its step, and starts over on reset", () => {
    const low = new Backoff({ initialMs: 250, maxMs: 5000 }, () => 0);
    expect(Array.from({ length: 7 }, () => low.nextMs())).toEqual([125, 250, 500, 1000, 2000, 2500, 2500]);
    const high = new Backoff({ initialMs: 250, maxMs: 5000 }, () => 0.999999);
    expect(Array.from({ length: 7 }, () => high.nextMs())).toEqual([250, 500, 1000, 2000, 4000, 5000, 5000]);
    low.reset();
    expect(low.nextMs()).toBe(125);
  });
});

describe("wording", () => {
  it("names hosts by rank, pid and hostname", () => {
    const facts = { backend: "cuda", hostname: "node-a", pid: 4242, gpus: [], freeMemoryBytes: null };
    expect(hostLabel({ hostId: "h3", rank: 2, facts })).toBe("host 2 (pid 4242 on node-a)");
    expect(hostLabel({ hostId: "h3", rank: null, facts })).toBe("standby host h3 (pid 4242 on node-a)");
  });

  it("writes seconds and lists as people do", () => {
    expect(seconds(30_000)).toBe("30 s");
    expect(seconds(1500)).toBe("1.5 s");
    expect(seconds(250)).toBe("0.25 s");
    expect(listed(["a"])).toBe("a");
    expect(listed(["a", "b", "c"])).toBe("a, b and c");
  });
});

describe("options", () => {
  it("refuses what a coordinator or agent cannot start with, as INVALID_OPTIONS naming the option", async () => {
    const model = { path: "/m", fingerprint: null };
    await expect(Coordinator.start({ hosts: 0, token: "t", model })).rejects.toMatchObject({ code: "INVALID_OPTIONS", path: "hosts" });
    await expect(Coordinator.start({ hosts: 1, token: "", model })).rejects.toMatchObject({ code: "INVALID_OPTIONS", path: "token" });
    await expect(Coordinator.start({ hosts: 1, token: "t", model, heartbeatMs: 0 })).rejects.toMatchObject({ code: "INVALID_OPTIONS", path: "heartbeatMs" });
    const executor = new FakeExecutor();
    expect(() => HostAgent.start({ url: "http://x:1", token: "t", executor })).toThrow(expect.objectContaining({ code: "INVALID_OPTIONS", path: "url" }));
    await expect(CoordinatorClient.connect("not a url", "t")).rejects.toMatchObject({ code: "INVALID_OPTIONS", path: "url" });
  });

  it("a coordinator that cannot listen says where, as LISTEN", async () => {
    const model = { path: "/m", fingerprint: null };
    const first = await Coordinator.start({ hosts: 1, token: "t", model });
    const port = Number(new URL(first.url).port);
    await expect(Coordinator.start({ hosts: 1, token: "t", model, port })).rejects.toMatchObject({ code: "LISTEN", message: expect.stringContaining(`cannot listen on 127.0.0.1:${port}`) });
    await first.close();
  });
});

describe("errors", () => {
  it("ControlPlaneError is data: {code, message, path}", () => {
    const error = new ControlPlaneError({ code: "GROUP_TIMEOUT", message: "only 1 of 2 hosts joined" });
    expect(error).toBeInstanceOf(Error);
    expect(error.name).toBe("ControlPlaneError");
    expect(JSON.parse(JSON.stringify(error))).toEqual({ code: "GROUP_TIMEOUT", message: "only 1 of 2 hosts joined", path: "" });
  });

  it("keeps an engine error's code and path, and makes anything else INTERNAL", () => {
    expect(toErrorData({ code: "COMM", message: "peer closed", path: "rank 3" })).toEqual({ code: "COMM", message: "peer closed", path: "rank 3" });
    expect(toErrorData(new Error("boom"))).toEqual({ code: "INTERNAL", message: "boom", path: "" });
    expect(toErrorData("string thrown")).toEqual({ code: "INTERNAL", message: "string thrown", path: "" });
    expect(toErrorData({ code: "", message: "no code" })).toMatchObject({ code: "INTERNAL" });
  });
});
