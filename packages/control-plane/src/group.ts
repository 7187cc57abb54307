import type { HostFacts, HostState } from "@apb/protocol";
import { hostLabel, listed, seconds } from "./describe.js";
import type { Peer } from "./peer.js";

/** An admitted host as the coordinator tracks it. */
export interface HostRecord {
  hostId: string;
  peer: Peer;
  facts: HostFacts;
  dataAddress: string | null;
  rankHint: number | undefined;
  rank: number | null;
  state: HostState;
  fingerprint: string | null;
  /** Whether a heartbeat came back since the last tick; consecutive ticks without one are misses. */
  answered: boolean;
  misses: number;
}

/** A group from formation to dissolution. */
export interface Group {
  groupId: string;
  /** Index is rank. */
  members: HostRecord[];
  phase: "bootstrap" | "rendezvous" | "formed";
  joined: Set<HostRecord>;
  /** Until formed: a formation that hangs (a data plane that never connects) is given up and retried. */
  formTimer: NodeJS.Timeout | null;
}

/** After a failed formation the next waits this long, doubling up to 5 s, so a host that cannot join does not spin the group. */
export function reformDelayMs(failuresInARow: number): number {
  return Math.min(5000, 250 * 2 ** failuresInARow);
}

/** What a forming group waits for: "waiting for host 2 (pid 7 on node-c) to join the data plane". */
export function formationWait(group: Group): string {
  if (group.phase === "bootstrap") return "waiting for rank 0's data-plane bootstrap";
  const late = group.members.filter((m) => !group.joined.has(m)).map((m) => hostLabel(m));
  return `waiting for ${listed(late)} to join the data plane`;
}

/** Why no group formed within `timeoutMs`: how many hosts joined, and what each missing rank lacks. */
export function groupTimeoutMessage(slots: readonly (HostRecord | null)[], group: Group | null, lastFormationError: string | null, timeoutMs: number): string {
  const present = slots.filter((h) => h !== null && h.state !== "loading").length;
  if (present < slots.length) {
    const details = slots.flatMap((h, rank) => (h === null ? [`rank ${rank}: no host connected`] : h.state === "loading" ? [`${hostLabel(h)}: still loading the model`] : []));
    return `only ${present} of ${slots.length} hosts joined within ${seconds(timeoutMs)} (${details.join("; ")})`;
  }
  const waiting = group ? formationWait(group) : "re-forming";
  const lastFailure = lastFormationError ? `; the last attempt failed: ${lastFormationError}` : "";
  return `all ${slots.length} hosts joined but the group did not form within ${seconds(timeoutMs)} (${waiting}${lastFailure})`;
}
