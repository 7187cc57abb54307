// Test support: one valid example of every message, by sender, as the specification's fixtures.
import type { HostFacts, HostJobResult, JobSpec, Message } from "./index.js";

export const facts: HostFacts = {
  backend: "cuda",
  hostname: "node-a",
  pid: 4242,
  gpus: [{ name: "NVIDIA H100 80GB HBM3", memoryBytes: 85_520_809_984 }],
  freeMemoryBytes: 84_000_000_000,
};

export const job: JobSpec = {
  context: [1, 128000, 791, 1917, 374, 264],
  prefixTokens: 1,
  query: [3923, 374],
  strategy: "apb",
  anchorTokens: 4,
  passingTokens: 2,
  balanced: false,
  scorer: "query",
  maxTokens: 16,
  stopTokenIds: [128001, 128009],
  temperature: 0,
  topP: 1,
  seed: 7,
};

export const hostResult: HostJobResult = {
  rank: 1,
  tokens: [40, 1097, 13],
  firstLogits: "AACAPwAAAEA=",
  anchorTokens: 4,
  passingTokens: 2,
  blockTokens: 3,
  timings: { prefillMs: 12.5, prefillWallMs: 14, computeMs: 10, commMs: 2.5, prefillRows: 7, phasesMs: { anchor: 1.25, attention: 8 } },
};

const error = { code: "COMM", message: "rank 1: peer closed the connection", path: "" };

export const fromHost: Message[] = [
  { type: "hello", v: 1, token: "s3cret", role: "host", rankHint: 2, facts, dataAddress: "10.0.0.2:29500" },
  { type: "hello", v: 1, token: "s3cret", role: "host", facts: { ...facts, gpus: [], freeMemoryBytes: null }, dataAddress: null },
  { type: "ready", v: 1, fingerprint: "sha256:4f1c" },
  { type: "bootstrap", v: 1, groupId: "g1", bootstrap: "0a1b2c" },
  { type: "joined", v: 1, groupId: "g1" },
  { type: "progress", v: 1, jobId: "7", rank: 1, phase: "prefill", done: 3, total: 32 },
  { type: "token", v: 1, jobId: "7", rank: 1, tokenId: 40 },
  { type: "result", v: 1, jobId: "7", rank: 1, result: hostResult },
  { type: "error", v: 1, jobId: "7", rank: 1, error },
  { type: "error", v: 1, jobId: null, rank: null, error: { code: "MODEL_FILE", message: "config.json is missing", path: "config.json" } },
  { type: "heartbeat", v: 1, seq: 12 },
];

export const fromCaller: Message[] = [
  { type: "hello", v: 1, token: "s3cret", role: "caller" },
  { type: "submit", v: 1, requestId: "r1", job, groupTimeoutMs: 30_000 },
  { type: "submit", v: 1, requestId: "r2", job: { ...job, anchorTokens: undefined, passingTokens: undefined, balanced: undefined, scorer: undefined, strategy: "ring-zigzag" } },
  { type: "cancel", v: 1, requestId: "r1" },
  { type: "status", v: 1 },
  { type: "watch", v: 1 },
];

export const fromCoordinator: Message[] = [
  { type: "welcome", v: 1, hostId: "h3", model: { path: "/models/llama-3.1-8b", fingerprint: null }, heartbeatMs: 1000 },
  { type: "bootstrapRequest", v: 1, groupId: "g1", worldSize: 4 },
  { type: "rendezvous", v: 1, groupId: "g1", rank: 2, worldSize: 4, addresses: ["10.0.0.1:29500", null, "10.0.0.3:29500", "10.0.0.4:29500"], bootstrap: "0a1b2c" },
  { type: "job", v: 1, jobId: "7", groupId: "g1", job },
  { type: "abort", v: 1, jobId: "7", reason: "host 2 (pid 4242 on node-a) died: its socket closed during job 7", rootCauseHost: 2 },
  { type: "abort", v: 1, jobId: null, reason: "cancelled", rootCauseHost: null },
  { type: "dissolve", v: 1, groupId: "g1", reason: "job 7 was aborted" },
  { type: "heartbeat", v: 1, seq: 12 },
  { type: "error", v: 1, error: { code: "UNAUTHORIZED", message: "wrong token", path: "token" } },
  { type: "accepted", v: 1, requestId: "r1", jobId: "7" },
  { type: "token", v: 1, requestId: "r1", jobId: "7", tokenId: 40 },
  { type: "progress", v: 1, requestId: "r1", jobId: "7", rank: 0, phase: "prefill", done: 1, total: 2 },
  { type: "done", v: 1, requestId: "r1", result: { jobId: "7", tokens: [40], firstLogits: null, hosts: [{ ...hostResult, rank: 0 }, hostResult], wallMs: 40.5, firstTokenMs: 30 } },
  { type: "failed", v: 1, requestId: "r1", error },
  {
    type: "status",
    v: 1,
    status: {
      formed: true,
      groupId: "g1",
      worldSize: 1,
      hosts: [{ hostId: "h1", rank: 0, facts, state: "joined", lastSeenMs: 12 }],
      missing: 0,
      queuedJobs: 0,
      runningJobId: null,
      connections: 2,
    },
  },
  {
    type: "jobStarted",
    v: 1,
    jobId: "7",
    groupId: "g1",
    job: { contextTokens: 6, queryTokens: 2, prefixTokens: 1, strategy: "apb", hosts: 2, anchorTokens: 4, passingTokens: 2, balanced: false, scorer: "query", maxTokens: 16 },
  },
  { type: "jobProgress", v: 1, jobId: "7", rank: 1, phase: "prefill", done: 3, total: 32 },
  { type: "jobDone", v: 1, jobId: "7", wallMs: 40.5, firstTokenMs: 30, hosts: [{ rank: 0, anchorTokens: 4, passingTokens: 2, blockTokens: 3, timings: hostResult.timings }] },
  { type: "jobFailed", v: 1, jobId: "7", error },
];
