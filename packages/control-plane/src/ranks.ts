/**
 * The rank a host takes among `slots` (null = free): its hint, when a launcher gave one (torchrun's
 * RANK, Slurm's SLURM_PROCID) that is in range and free, so ranks match the launcher's view;
 * otherwise the lowest free rank; null when every rank is taken (the host waits as standby).
 */
export function assignRank(hint: number | undefined, slots: readonly unknown[]): number | null {
  if (hint !== undefined && hint < slots.length && slots[hint] === null) return hint;
  const free = slots.indexOf(null);
  return free === -1 ? null : free;
}
