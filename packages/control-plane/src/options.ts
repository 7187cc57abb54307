import type { ModelRef } from "@apb/protocol";
import { ControlPlaneError } from "./errors.js";

export interface CoordinatorOptions {
  /** Interface to listen on (default 127.0.0.1: expose it on purpose, with a token). */
  host?: string;
  /** 0 (the default) takes any free port; `url` says which. */
  port?: number;
  /** The group's size: jobs run once this many hosts are ready and joined. */
  hosts: number;
  /** Shared secret every host and caller presents in its hello. */
  token: string;
  /** The model every host loads; a null fingerprint takes the first ready host's. */
  model: ModelRef;
  /** How often each host is sent a heartbeat to echo (default 1000). */
  heartbeatMs?: number;
  /** A host that misses this many heartbeats in a row is dead (default 3). */
  missedHeartbeats?: number;
  /** A connection that sends no hello in this long is closed (default 10 s). */
  helloTimeoutMs?: number;
  /** How long a job waits for the group to form when submit does not say (default 60 s). */
  groupTimeoutMs?: number;
  /** A group whose hosts are all there but that has not formed in this long is dissolved and formed again (default 120 s). */
  formTimeoutMs?: number;
  /** Jobs allowed to wait behind the running one; more are refused as BUSY (default 1024). */
  maxQueuedJobs?: number;
  logger?: (line: string) => void;
}

/** The options with every default filled in. */
export type Settings = Required<Omit<CoordinatorOptions, "logger">> & { log: (line: string) => void };

/** Checks the options (INVALID_OPTIONS naming the first bad one) and fills in the defaults. */
export function resolveOptions(o: CoordinatorOptions): Settings {
  const bad = (path: string, message: string): never => {
    throw new ControlPlaneError({ code: "INVALID_OPTIONS", message: `Coordinator.start: ${path} ${message}`, path });
  };
  if (!Number.isInteger(o.hosts) || o.hosts < 1 || o.hosts > 65_535) bad("hosts", `must be an integer in [1, 65535], found ${String(o.hosts)}`);
  if (typeof o.token !== "string" || o.token === "") bad("token", "must be a non-empty string: hosts and callers present it in their hello");
  for (const key of ["heartbeatMs", "missedHeartbeats", "helloTimeoutMs", "groupTimeoutMs", "formTimeoutMs", "maxQueuedJobs"] as const) {
    const value = o[key];
    if (value !== undefined && !(Number.isInteger(value) && value >= 1)) bad(key, `must be a positive integer, found ${String(value)}`);
  }
  return {
    host: o.host ?? "127.0.0.1",
    port: o.port ?? 0,
    hosts: o.hosts,
    token: o.token,
    model: o.model,
    heartbeatMs: o.heartbeatMs ?? 1000,
    missedHeartbeats: o.missedHeartbeats ?? 3,
    helloTimeoutMs: o.helloTimeoutMs ?? 10_000,
    groupTimeoutMs: o.groupTimeoutMs ?? 60_000,
    formTimeoutMs: o.formTimeoutMs ?? 120_000,
    maxQueuedJobs: o.maxQueuedJobs ?? 1024,
    log: o.logger ?? (() => {}),
  };
}
