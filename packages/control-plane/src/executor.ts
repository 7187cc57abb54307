import type { HostFacts, HostJobResult, JobSpec, ModelRef } from "@apb/protocol";

export interface GroupMembership {
  groupId: string;
  rank: number;
  worldSize: number;
  /** Every rank's data-plane address, in rank order (null where a rank's data plane needs none). */
  addresses: (string | null)[];
  /** Rank 0's groupBootstrap(), the same string for every rank. */
  bootstrap: string;
}

export interface RunIO {
  /** Each generated token, in order; the agent forwards the last rank's to the caller. */
  onToken(tokenId: number): void;
  onProgress(phase: string, done: number, total: number): void;
}

/**
 * What a host does; the control plane knows no engine and drives one through this. Calls that
 * change the group (groupBootstrap, joinGroup, run, leaveGroup) come one at a time, in the order
 * the coordinator asked for them; facts, dataAddress and abort may come at any time.
 */
export interface HostExecutor {
  facts(): Promise<HostFacts> | HostFacts;
  /** "ip:port" of this host's TCP data plane, or null when it bootstraps another way (NCCL). */
  dataAddress(): string | null;
  /** Loads the model (again after a reconnect: cache it) and says which weights it holds. */
  load(model: ModelRef, onProgress: (done: number, total: number) => void): Promise<{ fingerprint: string }>;
  /** Rank 0 only: what the other ranks need to join its data plane (an NCCL unique id in hex, say). */
  groupBootstrap(worldSize: number): Promise<string>;
  joinGroup(group: GroupMembership): Promise<void>;
  run(job: JobSpec & { jobId: string }, io: RunIO): Promise<HostJobResult>;
  /** Stops the running job (or a joinGroup in flight) promptly, by breaking the data plane if need be; run then rejects. */
  abort(reason: string): void;
  /** Tears down the data plane; the next group will joinGroup afresh. */
  leaveGroup(): Promise<void>;
}
