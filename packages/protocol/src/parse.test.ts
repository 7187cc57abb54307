import { describe, expect, it } from "vitest";
import { facts, fromCaller, fromCoordinator, fromHost, job } from "./examples.test-helper.js";
import { encodeFrame, MAX_FRAME_BYTES, parseFrame, parseJob, PROTOCOL_VERSION, type Sender } from "./index.js";

const withoutUndefined = (value: unknown) => JSON.parse(JSON.stringify(value));

/** The error parseFrame gives for `frame` from `from` (fails the test when it parses). */
function refused(frame: unknown, from: Sender = "host") {
  const raw = typeof frame === "string" ? frame : JSON.stringify(frame);
  const parsed = parseFrame(raw, from);
  if (parsed.ok) throw new Error(`expected ${raw.slice(0, 200)} to be refused`);
  return parsed.error;
}

describe("parseFrame: every message round-trips", () => {
  const cases: [Sender, typeof fromHost][] = [["host", fromHost], ["caller", fromCaller], ["coordinator", fromCoordinator]];
  for (const [from, messages] of cases) {
    for (const message of messages) {
      it(`${from} ${message.type}${"role" in message ? ` (${message.role})` : ""}`, () => {
        const { v, ...unversioned } = message;
        expect(v).toBe(PROTOCOL_VERSION);
        const frame = encodeFrame(unversioned);
        expect(parseFrame(frame, from)).toEqual({ ok: true, message: withoutUndefined(message) });
        expect(parseFrame(Buffer.from(frame), from)).toEqual({ ok: true, message: withoutUndefined(message) });
      });
    }
  }

  it("covers every type each sender may send", () => {
    const types = (messages: typeof fromHost) => [...new Set(messages.map((m) => m.type))].sort();
    expect(types(fromHost)).toEqual(["bootstrap", "error", "heartbeat", "hello", "joined", "progress", "ready", "result", "token"]);
    expect(types(fromCaller)).toEqual(["cancel", "hello", "status", "submit", "watch"]);
    expect(types(fromCoordinator)).toEqual(
      [
        "abort", "accepted", "bootstrapRequest", "dissolve", "done", "error", "failed", "heartbeat", "job",
        "jobDone", "jobFailed", "jobProgress", "jobStarted", "progress", "rendezvous", "status", "token", "welcome",
      ],
    );
  });

  it("lets a peer that has not said hello send hello of either role, and nothing else", () => {
    expect(parseFrame(JSON.stringify(fromHost[0]), "peer").ok).toBe(true);
    expect(parseFrame(JSON.stringify(fromCaller[0]), "peer").ok).toBe(true);
    expect(refused({ type: "heartbeat", v: 1, seq: 1 }, "peer")).toMatchObject({ code: "NOT_ALLOWED", path: "type", message: "send hello first (got heartbeat)" });
    expect(refused({ type: "submit", v: 1, requestId: "r", job }, "peer")).toMatchObject({ code: "NOT_ALLOWED" });
  });

  it("parses a second hello of either role, so the coordinator can call it a duplicate", () => {
    expect(parseFrame(JSON.stringify(fromCaller[0]), "host")).toMatchObject({ ok: true, message: { type: "hello", role: "caller" } });
    expect(parseFrame(JSON.stringify(fromHost[0]), "caller")).toMatchObject({ ok: true, message: { type: "hello", role: "host" } });
  });
});

describe("parseFrame: each bad frame gets its code and the field it is about", () => {
  it("size: FRAME_TOO_LARGE over MAX_FRAME_BYTES, for strings and buffers", () => {
    const big = `{"type":"heartbeat","v":1,"seq":1,"pad":"${"x".repeat(MAX_FRAME_BYTES)}"}`;
    expect(refused(big)).toMatchObject({ code: "FRAME_TOO_LARGE", path: "" });
    expect(parseFrame(Buffer.from(big), "host")).toMatchObject({ ok: false, error: { code: "FRAME_TOO_LARGE" } });
    // 3-byte characters: a string under the limit in UTF-16 units but over it in bytes.
    const wide = "€".repeat(MAX_FRAME_BYTES / 3 + 1);
    expect(refused(wide)).toMatchObject({ code: "FRAME_TOO_LARGE" });
  });

  it("JSON: BAD_FRAME for text that does not parse, invalid UTF-8, and JSON that is not an object", () => {
    expect(refused("{not json")).toMatchObject({ code: "BAD_FRAME", path: "" });
    expect(parseFrame(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), "host")).toMatchObject({ ok: false, error: { code: "BAD_FRAME", path: "" } });
    expect(refused("[1,2]")).toMatchObject({ code: "BAD_FRAME", message: "frame must be a JSON object, found an array" });
    expect(refused("null")).toMatchObject({ code: "BAD_FRAME", message: "frame must be a JSON object, found null" });
    expect(refused("42")).toMatchObject({ code: "BAD_FRAME" });
  });

  it("version: UNSUPPORTED_VERSION for another version; BAD_FRAME for a missing or non-numeric one", () => {
    expect(refused({ type: "heartbeat", v: 2, seq: 1 })).toEqual({
      code: "UNSUPPORTED_VERSION",
      path: "v",
      message: "protocol version 2 is not supported: this side speaks version 1",
    });
    expect(refused({ type: "heartbeat", seq: 1 })).toMatchObject({ code: "BAD_FRAME", path: "v" });
    expect(refused({ type: "heartbeat", v: "1", seq: 1 })).toMatchObject({ code: "BAD_FRAME", path: "v" });
  });

  it("type: BAD_FRAME when missing or unknown; NOT_ALLOWED when known but not this sender's", () => {
    expect(refused({ v: 1 })).toMatchObject({ code: "BAD_FRAME", path: "type", message: "frame has no type" });
    expect(refused({ v: 1, type: 3 })).toMatchObject({ code: "BAD_FRAME", path: "type" });
    expect(refused({ v: 1, type: "launch" })).toMatchObject({ code: "BAD_FRAME", path: "type", message: 'unknown message type "launch"' });
    expect(refused({ v: 1, type: "toString" })).toMatchObject({ code: "BAD_FRAME", path: "type" });
    expect(refused({ type: "submit", v: 1, requestId: "r1", job }, "host")).toMatchObject({ code: "NOT_ALLOWED", path: "type", message: "a host may not send submit (got submit)" });
    expect(refused({ type: "ready", v: 1, fingerprint: "f" }, "caller")).toMatchObject({ code: "NOT_ALLOWED", message: "a caller may not send ready (got ready)" });
    expect(refused({ type: "welcome", v: 1, hostId: "h", model: { path: "/m", fingerprint: null }, heartbeatMs: 1 }, "host")).toMatchObject({ code: "NOT_ALLOWED" });
  });

  it("shape: BAD_FRAME whose path names the field, down to the array index", () => {
    const submit = (patch: object) => ({ type: "submit", v: 1, requestId: "r1", job: { ...job, ...patch } });
    expect(refused(submit({ context: [1, 2, 3, -1] }), "caller")).toEqual({
      code: "BAD_FRAME",
      path: "job.context[3]",
      message: "submit: job.context[3] must be a token id: an integer in [0, 2^32), found -1",
    });
    expect(refused(submit({ query: [2 ** 32] }), "caller")).toMatchObject({ path: "job.query[0]" });
    expect(refused(submit({ query: [1.5] }), "caller")).toMatchObject({ path: "job.query[0]" });
    expect(refused(submit({ query: [] }), "caller")).toMatchObject({ path: "job.query", message: expect.stringContaining("at least one token") });
    expect(refused(submit({ context: "1 2 3" }), "caller")).toMatchObject({ path: "job.context", message: expect.stringContaining("must be an array of token ids") });
    expect(refused(submit({ strategy: "warp" }), "caller")).toMatchObject({ path: "job.strategy", message: expect.stringContaining("must be one of full, apb, star, ring, ring-zigzag, ulysses") });
    expect(parseFrame(JSON.stringify(submit({ strategy: "ulysses" })), "caller")).toMatchObject({ ok: true, message: { job: { strategy: "ulysses" } } });
    expect(refused(submit({ topP: 0 }), "caller")).toMatchObject({ path: "job.topP", message: "submit: job.topP must be > 0, found 0" });
    expect(refused(submit({ temperature: -0.5 }), "caller")).toMatchObject({ path: "job.temperature" });
    expect(refused(submit({ maxTokens: 2.5 }), "caller")).toMatchObject({ path: "job.maxTokens", message: "submit: job.maxTokens must be an integer, found 2.5" });
    expect(refused(submit({ seed: 2 ** 32 }), "caller")).toMatchObject({ path: "job.seed" });
    expect(refused(submit({ prefixTokens: 7 }), "caller")).toMatchObject({ path: "job.prefixTokens", message: "submit: job.prefixTokens must be <= context's length (6), found 7" });
    expect(refused(submit({ stopTokenIds: undefined }), "caller")).toMatchObject({ path: "job.stopTokenIds", message: expect.stringContaining("is required") });
    expect(refused(submit({ extra: 1 }), "caller")).toMatchObject({ path: "job.extra", message: "submit: job.extra is not a field of this message" });
  });

  it("shape: hello's fields, the role and the facts", () => {
    const hello = { type: "hello", v: 1, token: "t", role: "host", facts, dataAddress: null };
    expect(refused({ ...hello, role: "admin" }, "peer")).toMatchObject({ code: "BAD_FRAME", path: "role", message: expect.stringContaining('"host" or "caller"') });
    expect(refused({ ...hello, token: 42 }, "peer")).toMatchObject({ path: "token", message: "hello: token must be a string, found 42" });
    // A hello without a token parses: the coordinator refuses it as UNAUTHORIZED, which an agent does not retry.
    expect(parseFrame(JSON.stringify({ ...hello, token: undefined }), "peer").ok).toBe(true);
    expect(refused({ ...hello, rankHint: -1 }, "peer")).toMatchObject({ path: "rankHint" });
    expect(refused({ ...hello, facts: { ...facts, gpus: [{ name: "x", memoryBytes: "80G" }] } }, "peer")).toMatchObject({ path: "facts.gpus[0].memoryBytes" });
    expect(refused({ ...hello, facts: { ...facts, pid: undefined } }, "peer")).toMatchObject({ path: "facts.pid" });
  });

  it("shape: results and errors from hosts", () => {
    const result = fromHost.find((m) => m.type === "result")!;
    const timings = { ...(result as { result: { timings: object } }).result.timings, phasesMs: { attention: "slow" } };
    expect(refused({ ...result, result: { ...(result as { result: object }).result, timings } })).toMatchObject({ path: "result.timings.phasesMs.attention" });
    expect(refused({ type: "error", v: 1, jobId: "1", rank: 0, error: { code: "", message: "m", path: "" } })).toMatchObject({ path: "error.code" });
    expect(refused({ type: "token", v: 1, jobId: "1", rank: 0, tokenId: -3 })).toMatchObject({ path: "tokenId", message: "token: tokenId must be >= 0, found -3" });
  });

  it("parseJob checks an in-memory job as submit would, as INVALID_JOB", () => {
    expect(parseJob(job)).toEqual({ ok: true, message: job });
    expect(parseJob({ ...job, context: [1, -2] })).toEqual({
      ok: false,
      error: { code: "INVALID_JOB", path: "job.context[1]", message: "job.context[1] must be a token id: an integer in [0, 2^32), found -2" },
    });
    expect(parseJob({ ...job, seed: undefined })).toMatchObject({ ok: false, error: { path: "job.seed", message: "job.seed is required and must be a number" } });
    expect(parseJob(null)).toMatchObject({ ok: false, error: { code: "INVALID_JOB", path: "job" } });
  });

  it("never throws, whatever it is given", () => {
    for (const raw of ["", " ", "\u0000", "{}", '{"v":1,"type":"hello"}', '{"__proto__":{"v":1}}', '{"v":1,"type":"hello","constructor":1}']) {
      expect(() => parseFrame(raw, "host")).not.toThrow();
      expect(parseFrame(raw, "host").ok).toBe(false);
    }
  });
});
