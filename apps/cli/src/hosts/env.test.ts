import { describe, expect, it } from "vitest";
import { launcherEnv } from "./env.js";

describe("a worker's place from its launcher's variables", () => {
  it("reads torchrun's rank, world size, local rank and rendezvous address", () => {
    expect(launcherEnv({ RANK: "3", WORLD_SIZE: "8", LOCAL_RANK: "1", MASTER_ADDR: "node-a", MASTER_PORT: "29500" })).toEqual({
      rank: 3,
      worldSize: 8,
      localRank: 1,
      coordinator: "ws://node-a:29500",
      source: "torchrun",
    });
  });

  it("reads Slurm's task id, task count and local id", () => {
    expect(launcherEnv({ SLURM_PROCID: "5", SLURM_NTASKS: "16", SLURM_LOCALID: "2" })).toEqual({ rank: 5, worldSize: 16, localRank: 2, source: "slurm" });
  });

  it("ignores values that are not whole numbers instead of guessing", () => {
    expect(launcherEnv({ RANK: "two" }).rank).toBeUndefined();
  });

  it("is empty when no launcher started the worker", () => {
    expect(launcherEnv({})).toEqual({});
  });
});
