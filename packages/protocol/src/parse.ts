import type { z } from "zod";
import type { ErrorData } from "./errors.js";
import { JobSpecSchema, type JobSpec } from "./job.js";
import {
  AbortSchema,
  AcceptedSchema,
  BootstrapRequestSchema,
  BootstrapSchema,
  CallerProgressSchema,
  CallerTokenSchema,
  CancelSchema,
  CoordinatorErrorSchema,
  DissolveSchema,
  DoneSchema,
  FailedSchema,
  HeartbeatSchema,
  JobDoneSchema,
  JobFailedSchema,
  JobProgressSchema,
  JobStartedSchema,
  HelloSchema,
  HostErrorSchema,
  HostProgressSchema,
  HostResultSchema,
  HostTokenSchema,
  JobSchema,
  JoinedSchema,
  ReadySchema,
  RendezvousSchema,
  StatusRequestSchema,
  StatusSchema,
  SubmitSchema,
  WatchSchema,
  WelcomeSchema,
  type CallerHello,
  type FromCaller,
  type FromCoordinator,
  type FromHost,
  type Hello,
  type HostHello,
  type Message,
  type Unversioned,
} from "./messages.js";
import { MAX_FRAME_BYTES, PROTOCOL_VERSION } from "./version.js";

/**
 * Who sent a frame. "peer" is a connection that has not said hello yet: it may send only hello.
 * A host or caller may send hello again (of either role) and get it parsed, so the coordinator
 * can refuse it as DUPLICATE_HELLO rather than as a malformed frame.
 */
export type Sender = "host" | "caller" | "coordinator" | "peer";

export interface Parsed {
  host: FromHost | CallerHello;
  caller: FromCaller | HostHello;
  coordinator: FromCoordinator;
  peer: Hello;
}

export type ParseResult<M> = { ok: true; message: M } | { ok: false; error: ErrorData };

type Table = Record<string, z.ZodType>;

const FROM_HOST: Table = {
  hello: HelloSchema,
  ready: ReadySchema,
  bootstrap: BootstrapSchema,
  joined: JoinedSchema,
  progress: HostProgressSchema,
  token: HostTokenSchema,
  result: HostResultSchema,
  error: HostErrorSchema,
  heartbeat: HeartbeatSchema,
};
const FROM_CALLER: Table = { hello: HelloSchema, submit: SubmitSchema, cancel: CancelSchema, status: StatusRequestSchema, watch: WatchSchema };
const FROM_COORDINATOR: Table = {
  welcome: WelcomeSchema,
  bootstrapRequest: BootstrapRequestSchema,
  rendezvous: RendezvousSchema,
  job: JobSchema,
  abort: AbortSchema,
  dissolve: DissolveSchema,
  heartbeat: HeartbeatSchema,
  error: CoordinatorErrorSchema,
  accepted: AcceptedSchema,
  token: CallerTokenSchema,
  progress: CallerProgressSchema,
  done: DoneSchema,
  failed: FailedSchema,
  status: StatusSchema,
  jobStarted: JobStartedSchema,
  jobProgress: JobProgressSchema,
  jobDone: JobDoneSchema,
  jobFailed: JobFailedSchema,
};
const TABLES: Record<Sender, Table> = { host: FROM_HOST, caller: FROM_CALLER, coordinator: FROM_COORDINATOR, peer: { hello: HelloSchema } };
const KNOWN_TYPES = new Set([...Object.keys(FROM_HOST), ...Object.keys(FROM_CALLER), ...Object.keys(FROM_COORDINATOR)]);

const decoder = new TextDecoder("utf-8", { fatal: true });
const encoder = new TextEncoder();

function fail(code: ErrorData["code"], path: string, message: string): { ok: false; error: ErrorData } {
  return { ok: false, error: { code, message, path } };
}

function byteLength(raw: string | Uint8Array): number {
  if (typeof raw !== "string") return raw.byteLength;
  // A UTF-16 unit is 1 to 3 bytes of UTF-8: skip encoding when either bound settles it.
  if (raw.length > MAX_FRAME_BYTES) return raw.length;
  if (raw.length * 3 <= MAX_FRAME_BYTES) return raw.length;
  return encoder.encode(raw).byteLength;
}

/**
 * One frame checked, in the order a peer's mistake is best explained: size, UTF-8 and JSON, the
 * protocol version, whether `from` may send this type at all, then every field. Never throws.
 */
export function parseFrame<S extends Sender>(raw: string | Uint8Array, from: S): ParseResult<Parsed[S]> {
  const size = byteLength(raw);
  if (size > MAX_FRAME_BYTES) return fail("FRAME_TOO_LARGE", "", `frame of ${size} bytes is over the limit of ${MAX_FRAME_BYTES} bytes`);
  let value: unknown;
  try {
    value = JSON.parse(typeof raw === "string" ? raw : decoder.decode(raw));
  } catch (e) {
    const reason = e instanceof Error ? e.message : String(e);
    return fail("BAD_FRAME", "", `frame is not UTF-8 JSON (${reason})`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    return fail("BAD_FRAME", "", `frame must be a JSON object, found ${kindOf(value)}`);
  }
  const frame = value as Record<string, unknown>;
  if (!("v" in frame)) return fail("BAD_FRAME", "v", `frame has no protocol version: add "v": ${PROTOCOL_VERSION}`);
  if (typeof frame.v !== "number") return fail("BAD_FRAME", "v", `v must be a number (the protocol version), found ${shown(frame.v)}`);
  if (frame.v !== PROTOCOL_VERSION) {
    return fail("UNSUPPORTED_VERSION", "v", `protocol version ${shown(frame.v)} is not supported: this side speaks version ${PROTOCOL_VERSION}`);
  }
  const type = frame.type;
  if (typeof type !== "string") return fail("BAD_FRAME", "type", type === undefined ? "frame has no type" : `type must be a string, found ${shown(type)}`);
  const schema = Object.hasOwn(TABLES[from], type) ? TABLES[from][type] : undefined;
  if (!schema) {
    if (!KNOWN_TYPES.has(type)) return fail("BAD_FRAME", "type", `unknown message type ${shown(type)}`);
    const why = from === "peer" ? "send hello first" : `a ${from} may not send ${type}`;
    return fail("NOT_ALLOWED", "type", `${why} (got ${type})`);
  }
  const parsed = schema.safeParse(frame);
  if (parsed.success) return { ok: true, message: parsed.data as Parsed[S] };
  return { ok: false, error: describeIssue(type, parsed.error, frame) };
}

/**
 * A job spec checked as a submit frame would check it, for callers that hold one in memory; the
 * error is INVALID_JOB with the path a submit frame would name ("job.context[3]").
 */
export function parseJob(value: unknown): ParseResult<JobSpec> {
  const parsed = JobSpecSchema.safeParse(value);
  if (parsed.success) return { ok: true, message: parsed.data };
  const error = describeIssue(null, parsed.error, value, ["job"]);
  return { ok: false, error: { ...error, code: "INVALID_JOB" } };
}

/** The frame for a message: encodeFrame adds the protocol version, so code never writes `v`. */
export function encodeFrame(message: Unversioned<Message>): string {
  return JSON.stringify({ ...message, v: PROTOCOL_VERSION });
}

// ---- error wording

/** "job.context[3]" for ["job", "context", 3], as apb writes paths everywhere. */
export function pathOf(path: readonly PropertyKey[]): string {
  return path.reduce<string>((acc, key) => {
    if (typeof key === "number") return `${acc}[${key}]`;
    return acc ? `${acc}.${String(key)}` : String(key);
  }, "");
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let value = input;
  for (const key of path) {
    if (value === null || typeof value !== "object") return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}

function kindOf(value: unknown): string {
  return value === null ? "null" : Array.isArray(value) ? "an array" : typeof value === "object" ? "an object" : shown(value);
}

function shown(value: unknown): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch {
    text = undefined;
  }
  if (text === undefined) return String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

const KIND_NAMES: Record<string, string> = {
  int: "an integer",
  number: "a number",
  string: "a string",
  object: "an object",
  array: "an array",
  boolean: "a boolean",
  null: "null",
};

function requirement(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case "invalid_type":
      return `must be ${KIND_NAMES[issue.expected] ?? issue.expected}`;
    case "too_small":
      if (issue.origin === "number") return `must be ${issue.inclusive ? ">=" : ">"} ${String(issue.minimum)}`;
      return `must have at least ${String(issue.minimum)} ${issue.origin === "string" ? "characters" : "elements"}`;
    case "too_big":
      if (issue.origin === "number") return `must be ${issue.inclusive ? "<=" : "<"} ${String(issue.maximum)}`;
      return `must have at most ${String(issue.maximum)} ${issue.origin === "string" ? "characters" : "elements"}`;
    case "invalid_value":
      return issue.message.startsWith("must") ? issue.message : `must be ${issue.values.map((v) => shown(v)).join(" or ")}`;
    case "invalid_union": {
      // A discriminated union (hello's `role`) lists the values it takes.
      const options = (issue as { options?: unknown }).options;
      return Array.isArray(options) ? `must be ${options.map((o) => shown(o)).join(" or ")}` : "matches no allowed shape";
    }
    case "custom":
      return issue.message;
    default:
      return `is wrong (${issue.message})`;
  }
}

/** The first issue as BAD_FRAME naming the field; `type` heads the message, `prefix` is where `root` sits in the frame. */
function describeIssue(type: string | null, error: z.ZodError, root: unknown, prefix: readonly PropertyKey[] = []): ErrorData {
  const head = type === null ? "" : `${type}: `;
  const issue = error.issues[0];
  if (!issue) return { code: "BAD_FRAME", path: pathOf(prefix), message: `${head}invalid` };
  if (issue.code === "unrecognized_keys") {
    const path = pathOf([...prefix, ...issue.path, issue.keys[0] ?? ""]);
    return { code: "BAD_FRAME", path, message: `${head}${path} is not a field of this message` };
  }
  const path = pathOf([...prefix, ...issue.path]);
  if (issue.code === "invalid_key") return { code: "BAD_FRAME", path, message: `${head}${path} is not an allowed key` };
  const found = valueAt(root, issue.path);
  if (found === undefined) return { code: "BAD_FRAME", path, message: `${head}${path || "the frame"} is required and ${requirement(issue)}` };
  return { code: "BAD_FRAME", path, message: `${head}${path || "the frame"} ${requirement(issue)}, found ${shown(found)}` };
}
