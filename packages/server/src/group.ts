// What the server needs of a group of hosts: a control-plane Coordinator has exactly this
// (submit a job, say who is there), so the server never talks to hosts itself.
import type { JobProgress, SubmitOptions } from "@apb/control-plane";
import type { JobResult, JobSpec, StatusSnapshot } from "@apb/protocol";

export interface JobGroup {
  submit(job: JobSpec, io: SubmitOptions): Promise<JobResult>;
  status(): StatusSnapshot;
}

export type { JobProgress };

/** A host as /health reports it. */
export interface HostHealth {
  rank: number | null;
  state: string;
  hostname: string;
  pid: number;
  backend: string;
  gpu: string | null;
  lastSeenMs: number;
}

export interface GroupHealth {
  ready: boolean;
  expected: number;
  up: number;
  /** Ranks with no host ready for them. */
  missingRanks: number[];
  hosts: HostHealth[];
  runningJob: boolean;
  message: string;
}

/** The group as /health and /metrics see it, from the coordinator's status. */
export function groupHealth(status: StatusSnapshot): GroupHealth {
  const present = new Set(status.hosts.filter((h) => h.rank !== null && h.state !== "loading").map((h) => h.rank!));
  const missingRanks = Array.from({ length: status.worldSize }, (_, r) => r).filter((r) => !present.has(r));
  const loading = status.hosts.filter((h) => h.state === "loading").length;
  const hosts = status.hosts.map((h) => ({
    rank: h.rank,
    state: h.state,
    hostname: h.facts.hostname,
    pid: h.facts.pid,
    backend: h.facts.backend,
    gpu: h.facts.gpus[0]?.name ?? null,
    lastSeenMs: h.lastSeenMs,
  }));
  let message: string;
  if (status.formed) message = `all ${status.worldSize} hosts are in the group`;
  else if (missingRanks.length === 0) message = "every host is there; the group is forming";
  else {
    const ranks = missingRanks.length === 1 ? `host ${missingRanks[0]}` : `hosts ${missingRanks.join(", ")}`;
    message = `waiting for ${ranks} of ${status.worldSize}${loading > 0 ? ` (${loading} loading the model)` : ""}`;
  }
  return { ready: status.formed, expected: status.worldSize, up: present.size, missingRanks, hosts, runningJob: status.runningJobId !== null, message };
}
