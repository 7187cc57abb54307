import { describe, expect, it } from "vitest";
import { hostResult } from "./examples.test-helper.js";
import { parseFrame } from "./index.js";

const summary = { contextTokens: 6, queryTokens: 2, prefixTokens: 1, strategy: "apb", hosts: 2, anchorTokens: null, passingTokens: null, balanced: null, scorer: null, maxTokens: 16 };

function refusal(frame: unknown, from: "caller" | "coordinator" | "host" | "peer" = "coordinator") {
  const parsed = parseFrame(JSON.stringify(frame), from);
  if (parsed.ok) throw new Error(`expected ${JSON.stringify(frame).slice(0, 200)} to be refused`);
  return parsed.error;
}

describe("watch and the watcher's pushes", () => {
  it("watch is a caller's message: a host may not send it, nor a peer before hello", () => {
    expect(parseFrame(JSON.stringify({ type: "watch", v: 1 }), "caller")).toEqual({ ok: true, message: { type: "watch", v: 1 } });
    expect(refusal({ type: "watch", v: 1 }, "host")).toMatchObject({ code: "NOT_ALLOWED", message: "a host may not send watch (got watch)" });
    expect(refusal({ type: "watch", v: 1 }, "peer")).toMatchObject({ code: "NOT_ALLOWED", message: "send hello first (got watch)" });
    expect(refusal({ type: "watch", v: 1, all: true }, "caller")).toMatchObject({ code: "BAD_FRAME", path: "all" });
  });

  it("jobStarted carries sizes and settings, never token ids", () => {
    const ok = parseFrame(JSON.stringify({ type: "jobStarted", v: 1, jobId: "1", groupId: "g1", job: summary }), "coordinator");
    expect(ok).toMatchObject({ ok: true, message: { job: { contextTokens: 6, anchorTokens: null } } });
    expect(refusal({ type: "jobStarted", v: 1, jobId: "1", groupId: "g1", job: { ...summary, context: [1, 2, 3] } })).toMatchObject({ code: "BAD_FRAME", path: "job.context" });
    expect(refusal({ type: "jobStarted", v: 1, jobId: "1", groupId: "g1", job: { ...summary, strategy: "mesh" } })).toMatchObject({ code: "BAD_FRAME", path: "job.strategy" });
    expect(refusal({ type: "jobStarted", v: 1, jobId: "1", groupId: "g1", job: { ...summary, hosts: 0 } })).toMatchObject({ code: "BAD_FRAME", path: "job.hosts" });
  });

  it("jobProgress is bounded like a host's progress", () => {
    const base = { type: "jobProgress", v: 1, jobId: "1", rank: 0, phase: "prefill", done: 1, total: 30 };
    expect(parseFrame(JSON.stringify(base), "coordinator").ok).toBe(true);
    expect(refusal({ ...base, rank: 70_000 })).toMatchObject({ path: "rank" });
    expect(refusal({ ...base, phase: "x".repeat(65) })).toMatchObject({ path: "phase" });
    expect(refusal({ ...base, done: -1 })).toMatchObject({ path: "done" });
    expect(refusal({ ...base, requestId: "r1" })).toMatchObject({ path: "requestId" });
  });

  it("jobDone carries each host's timings without its tokens or logits", () => {
    const { tokens: _tokens, firstLogits: _logits, ...timings } = hostResult;
    const base = { type: "jobDone", v: 1, jobId: "1", wallMs: 12, firstTokenMs: null, hosts: [timings] };
    expect(parseFrame(JSON.stringify(base), "coordinator")).toMatchObject({ ok: true, message: { hosts: [{ timings: { prefillMs: 12.5 } }] } });
    expect(refusal({ ...base, hosts: [hostResult] })).toMatchObject({ code: "BAD_FRAME", path: "hosts[0].tokens" });
    expect(refusal({ ...base, tokens: [1] })).toMatchObject({ path: "tokens" });
  });

  it("jobFailed carries error data; a caller may not send any of these", () => {
    expect(parseFrame(JSON.stringify({ type: "jobFailed", v: 1, jobId: "1", error: { code: "HOST_LOST", message: "host 1 died", path: "" } }), "coordinator").ok).toBe(true);
    expect(refusal({ type: "jobFailed", v: 1, jobId: "1", error: { code: "", message: "", path: "" } })).toMatchObject({ path: "error.code" });
    for (const type of ["jobStarted", "jobProgress", "jobDone", "jobFailed"]) expect(refusal({ type, v: 1 }, "caller")).toMatchObject({ code: "NOT_ALLOWED" });
  });
});
