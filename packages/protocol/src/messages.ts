import { z } from "zod";
import { HostJobResultSchema, JobResultSchema, JobSpecSchema, MAX_TOKEN_ID, SCORERS, STRATEGIES } from "./job.js";
import { PROTOCOL_VERSION } from "./version.js";

// Bounds on every string and array, so a frame's size is the only thing a peer controls.
const v = z.literal(PROTOCOL_VERSION);
const id = z.string().min(1).max(128);
const text = z.string().max(65_536);
const count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const bytes = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const rank = z.number().int().min(0).max(65_535);

export const ErrorDataSchema = z.strictObject({
  code: z.string().min(1).max(64),
  message: text,
  path: z.string().max(1024),
});

/** What a host offers, as its executor reports it; shown in status and in every message naming the host. */
export const HostFactsSchema = z.strictObject({
  backend: z.string().min(1).max(64),
  hostname: z.string().max(255),
  pid: z.number().int().min(0).max(2 ** 32 - 1),
  gpus: z.array(z.strictObject({ name: z.string().max(256), memoryBytes: bytes })).max(1024),
  freeMemoryBytes: bytes.nullable(),
});
export type HostFacts = z.infer<typeof HostFactsSchema>;

export const ModelRefSchema = z.strictObject({
  path: z.string().max(4096),
  /** What identifies the weights (hash of config and shard headers); null: take the first host's. */
  fingerprint: z.string().min(1).max(256).nullable(),
});
export type ModelRef = z.infer<typeof ModelRefSchema>;

export const HOST_STATES = ["loading", "standby", "ready", "forming", "joined", "running"] as const;
export type HostState = (typeof HOST_STATES)[number];

export const StatusSnapshotSchema = z.strictObject({
  formed: z.boolean(),
  groupId: id.nullable(),
  worldSize: rank,
  hosts: z
    .array(
      z.strictObject({
        hostId: id,
        rank: rank.nullable(),
        facts: HostFactsSchema,
        state: z.enum(HOST_STATES),
        /** Milliseconds since the coordinator last heard from the host (an age, so no clocks are compared). */
        lastSeenMs: z.number().min(0),
      }),
    )
    .max(65_536),
  /** Ranks that still lack a ready host. */
  missing: rank,
  queuedJobs: count,
  runningJobId: id.nullable(),
  /** Open WebSocket connections of any kind (hosts, callers, not yet identified). */
  connections: count,
});
export type StatusSnapshot = z.infer<typeof StatusSnapshotSchema>;

// ---- host -> coordinator

export const HostHelloSchema = z.strictObject({
  type: z.literal("hello"),
  v,
  /** Optional in the schema only so that a hello without one is refused as UNAUTHORIZED, not as a malformed frame. */
  token: z.string().max(4096).optional(),
  role: z.literal("host"),
  /** The rank the launcher gave this process (torchrun's RANK, Slurm's SLURM_PROCID); honored when free. */
  rankHint: rank.optional(),
  facts: HostFactsSchema,
  /** "ip:port" of this host's TCP data plane; null when the data plane bootstraps itself (NCCL). */
  dataAddress: z.string().min(1).max(512).nullable(),
});
export const ReadySchema = z.strictObject({ type: z.literal("ready"), v, fingerprint: z.string().min(1).max(256) });
export const BootstrapSchema = z.strictObject({ type: z.literal("bootstrap"), v, groupId: id, bootstrap: z.string().max(65_536) });
export const JoinedSchema = z.strictObject({ type: z.literal("joined"), v, groupId: id });
export const HostProgressSchema = z.strictObject({
  type: z.literal("progress"),
  v,
  jobId: id,
  rank,
  phase: z.string().min(1).max(64),
  done: count,
  total: count,
});
export const HostTokenSchema = z.strictObject({ type: z.literal("token"), v, jobId: id, rank, tokenId: z.number().int().min(0).max(MAX_TOKEN_ID) });
export const HostResultSchema = z.strictObject({ type: z.literal("result"), v, jobId: id, rank, result: HostJobResultSchema });
export const HostErrorSchema = z.strictObject({ type: z.literal("error"), v, jobId: id.nullable(), rank: rank.nullable(), error: ErrorDataSchema });
export const HeartbeatSchema = z.strictObject({ type: z.literal("heartbeat"), v, seq: count });

// ---- caller -> coordinator

export const CallerHelloSchema = z.strictObject({ type: z.literal("hello"), v, token: z.string().max(4096).optional(), role: z.literal("caller") });
export const SubmitSchema = z.strictObject({
  type: z.literal("submit"),
  v,
  requestId: id,
  job: JobSpecSchema,
  /** How long the job may wait for the group to form before failing with GROUP_TIMEOUT (the coordinator's default when absent). */
  groupTimeoutMs: z.number().int().min(0).max(2 ** 31 - 1).optional(),
});
export const CancelSchema = z.strictObject({ type: z.literal("cancel"), v, requestId: id });
export const StatusRequestSchema = z.strictObject({ type: z.literal("status"), v });
/** Asks for the group's status now and whenever it changes, and for the events of every job the group runs. */
export const WatchSchema = z.strictObject({ type: z.literal("watch"), v });

// ---- coordinator -> host

export const WelcomeSchema = z.strictObject({ type: z.literal("welcome"), v, hostId: id, model: ModelRefSchema, heartbeatMs: z.number().int().min(1).max(3_600_000) });
export const BootstrapRequestSchema = z.strictObject({ type: z.literal("bootstrapRequest"), v, groupId: id, worldSize: rank.min(1) });
export const RendezvousSchema = z.strictObject({
  type: z.literal("rendezvous"),
  v,
  groupId: id,
  rank,
  worldSize: rank.min(1),
  /** Each rank's dataAddress, in rank order. */
  addresses: z.array(z.string().min(1).max(512).nullable()).max(65_536),
  bootstrap: z.string().max(65_536),
});
export const JobSchema = z.strictObject({ type: z.literal("job"), v, jobId: id, groupId: id, job: JobSpecSchema });
export const AbortSchema = z.strictObject({ type: z.literal("abort"), v, jobId: id.nullable(), reason: text, rootCauseHost: rank.nullable() });
export const DissolveSchema = z.strictObject({ type: z.literal("dissolve"), v, groupId: id, reason: text });
export const CoordinatorErrorSchema = z.strictObject({ type: z.literal("error"), v, error: ErrorDataSchema });

// ---- coordinator -> caller

export const AcceptedSchema = z.strictObject({ type: z.literal("accepted"), v, requestId: id, jobId: id });
export const CallerTokenSchema = z.strictObject({ type: z.literal("token"), v, requestId: id, jobId: id, tokenId: z.number().int().min(0).max(MAX_TOKEN_ID) });
export const CallerProgressSchema = z.strictObject({
  type: z.literal("progress"),
  v,
  requestId: id,
  jobId: id,
  rank,
  phase: z.string().min(1).max(64),
  done: count,
  total: count,
});
export const DoneSchema = z.strictObject({ type: z.literal("done"), v, requestId: id, result: JobResultSchema });
export const FailedSchema = z.strictObject({ type: z.literal("failed"), v, requestId: id, error: ErrorDataSchema });
export const StatusSchema = z.strictObject({ type: z.literal("status"), v, status: StatusSnapshotSchema });

// ---- coordinator -> watching caller (after `watch`: status pushes above, and these for each job the group runs)

/** A job's sizes and settings, as a planner takes them: never its token ids. */
export const JobSummarySchema = z.strictObject({
  contextTokens: count,
  queryTokens: count,
  prefixTokens: count,
  strategy: z.enum(STRATEGIES),
  hosts: rank.min(1),
  anchorTokens: count.nullable(),
  passingTokens: count.nullable(),
  balanced: z.boolean().nullable(),
  scorer: z.enum(SCORERS).nullable(),
  maxTokens: count,
});
export type JobSummary = z.infer<typeof JobSummarySchema>;
export const JobStartedSchema = z.strictObject({ type: z.literal("jobStarted"), v, jobId: id, groupId: id, job: JobSummarySchema });
export const JobProgressSchema = z.strictObject({
  type: z.literal("jobProgress"),
  v,
  jobId: id,
  rank,
  phase: z.string().min(1).max(64),
  done: count,
  total: count,
});
/** One host's report without its tokens and logits. */
export const HostTimingsSchema = HostJobResultSchema.omit({ tokens: true, firstLogits: true });
export type HostTimings = z.infer<typeof HostTimingsSchema>;
export const JobDoneSchema = z.strictObject({
  type: z.literal("jobDone"),
  v,
  jobId: id,
  wallMs: z.number().min(0).max(Number.MAX_SAFE_INTEGER),
  firstTokenMs: z.number().min(0).max(Number.MAX_SAFE_INTEGER).nullable(),
  /** In rank order. */
  hosts: z.array(HostTimingsSchema).max(65_536),
});
export const JobFailedSchema = z.strictObject({ type: z.literal("jobFailed"), v, jobId: id, error: ErrorDataSchema });

/** Hello is the one type both roles send; its `role` says which. */
export const HelloSchema = z.discriminatedUnion("role", [HostHelloSchema, CallerHelloSchema]);

export const FromHostSchema = z.discriminatedUnion("type", [
  HostHelloSchema,
  ReadySchema,
  BootstrapSchema,
  JoinedSchema,
  HostProgressSchema,
  HostTokenSchema,
  HostResultSchema,
  HostErrorSchema,
  HeartbeatSchema,
]);
export const FromCallerSchema = z.discriminatedUnion("type", [CallerHelloSchema, SubmitSchema, CancelSchema, StatusRequestSchema, WatchSchema]);
/** To hosts and callers alike: every type here goes to one of them only, except `error`, which both may get. */
export const FromCoordinatorSchema = z.discriminatedUnion("type", [
  WelcomeSchema,
  BootstrapRequestSchema,
  RendezvousSchema,
  JobSchema,
  AbortSchema,
  DissolveSchema,
  HeartbeatSchema,
  CoordinatorErrorSchema,
  AcceptedSchema,
  CallerTokenSchema,
  CallerProgressSchema,
  DoneSchema,
  FailedSchema,
  StatusSchema,
  JobStartedSchema,
  JobProgressSchema,
  JobDoneSchema,
  JobFailedSchema,
]);

export type HostHello = z.infer<typeof HostHelloSchema>;
export type CallerHello = z.infer<typeof CallerHelloSchema>;
export type Hello = HostHello | CallerHello;
export type FromHost = z.infer<typeof FromHostSchema>;
export type FromCaller = z.infer<typeof FromCallerSchema>;
export type FromCoordinator = z.infer<typeof FromCoordinatorSchema>;
export type Message = FromHost | FromCaller | FromCoordinator;
/** A message without its `v`, as code builds it: encodeFrame adds the version. */
export type Unversioned<M> = M extends unknown ? Omit<M, "v"> : never;
