import type { FromCoordinator, Unversioned } from "@apb/protocol";
import { describe, expect, it } from "vitest";
import { checkAddress } from "./client.js";
import { age, bytes, health, ms } from "./format.js";
import { apply, emptyState, prefillFraction } from "./state.js";

const summary = { contextTokens: 100, queryTokens: 5, prefixTokens: 1, strategy: "apb", hosts: 2, anchorTokens: null, passingTokens: null, balanced: null, scorer: null, maxTokens: 4 } as const;
const timings = { prefillMs: 10, prefillWallMs: 11, computeMs: 9, commMs: 1, prefillRows: 50, phasesMs: {} };

describe("the live view's state", () => {
  it("follows a job from start through each host's layers to its end, ignoring other jobs' events", () => {
    const state = emptyState();
    const m = (message: Unversioned<FromCoordinator>) => apply(state, { ...message, v: 1 } as FromCoordinator);
    expect(m({ type: "jobStarted", jobId: "3", groupId: "g1", job: summary })).toEqual({ newJob: true });
    const job = state.job!;
    expect(prefillFraction(job, 0)).toBeNull();
    m({ type: "jobProgress", jobId: "3", rank: 0, phase: "prefill", done: 3, total: 12 });
    m({ type: "jobProgress", jobId: "2", rank: 1, phase: "prefill", done: 12, total: 12 });
    expect(prefillFraction(job, 0)).toBe(0.25);
    expect(prefillFraction(job, 1)).toBeNull();
    m({ type: "jobProgress", jobId: "3", rank: 1, phase: "done", done: 1, total: 1 });
    expect(prefillFraction(job, 1)).toBe(1);
    m({ type: "jobDone", jobId: "3", wallMs: 20, firstTokenMs: 15, hosts: [{ rank: 0, anchorTokens: 0, passingTokens: 0, blockTokens: 50, timings }] });
    expect(job.outcome).toMatchObject({ kind: "done", wallMs: 20 });
    expect(prefillFraction(job, 0)).toBe(1);
    m({ type: "jobStarted", jobId: "4", groupId: "g1", job: summary });
    m({ type: "jobFailed", jobId: "4", error: { code: "HOST_LOST", message: "host 1 died", path: "" } });
    expect(state.job).toMatchObject({ jobId: "4", outcome: { kind: "failed", error: { code: "HOST_LOST" } } });
  });

  it("names a bad address instead of retrying it", () => {
    expect(checkAddress("ws://127.0.0.1:29500")).toBeNull();
    expect(checkAddress("wss://node-a:443")).toBeNull();
    expect(checkAddress("127.0.0.1:29500")).toMatch(/must start with ws:\/\/|is not an address/);
    expect(checkAddress("http://127.0.0.1:29500")).toMatch(/must start with ws:\/\/ or wss:\/\//);
    expect(checkAddress("not an address")).toMatch(/is not an address: write ws:\/\/HOST:PORT/);
  });

  it("formats sizes, times and health", () => {
    expect(bytes(null)).toBe("—");
    expect(bytes(80 * 1024 ** 3)).toBe("80.0 GiB");
    expect(ms(12.34)).toBe("12.3 ms");
    expect(ms(1500)).toBe("1500 ms");
    expect(ms(12_500)).toBe("12.5 s");
    expect(age(200)).toBe("just now");
    expect(health(1000)).toBe("ok");
    expect(health(5000)).toBe("late");
  });
});
