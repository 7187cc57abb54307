// Where a worker learns its place when a launcher started it: torchrun's variables (RANK,
// WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) or Slurm's (SLURM_PROCID, SLURM_NTASKS,
// SLURM_LOCALID). Flags win over both.
export interface LauncherEnv {
  rank?: number;
  worldSize?: number;
  localRank?: number;
  coordinator?: string;
  source?: "torchrun" | "slurm";
}

function whole(text: string | undefined): number | undefined {
  if (text === undefined || !/^\d+$/.test(text)) return undefined;
  return Number(text);
}

export function launcherEnv(env: NodeJS.ProcessEnv = process.env): LauncherEnv {
  const coordinator = env.MASTER_ADDR && env.MASTER_PORT ? `ws://${env.MASTER_ADDR}:${env.MASTER_PORT}` : undefined;
  const withCoordinator = coordinator ? { coordinator } : {};
  if (env.RANK !== undefined) {
    return { rank: whole(env.RANK), worldSize: whole(env.WORLD_SIZE), localRank: whole(env.LOCAL_RANK), ...withCoordinator, source: "torchrun" };
  }
  if (env.SLURM_PROCID !== undefined) {
    return { rank: whole(env.SLURM_PROCID), worldSize: whole(env.SLURM_NTASKS), localRank: whole(env.SLURM_LOCALID), ...withCoordinator, source: "slurm" };
  }
  return withCoordinator;
}
