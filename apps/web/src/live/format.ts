// Numbers as the live view writes them.

export function bytes(n: number | null): string {
  if (n === null) return "—";
  if (n >= 1024 ** 3) return `${(n / 1024 ** 3).toFixed(1)} GiB`;
  if (n >= 1024 ** 2) return `${(n / 1024 ** 2).toFixed(0)} MiB`;
  return `${n} B`;
}

export function ms(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return "—";
  if (n >= 10_000) return `${(n / 1000).toFixed(1)} s`;
  if (n >= 100) return `${n.toFixed(0)} ms`;
  return `${n.toFixed(1)} ms`;
}

export function age(lastSeenMs: number): string {
  return lastSeenMs < 1000 ? "just now" : `${(lastSeenMs / 1000).toFixed(1)} s ago`;
}

/** A host is healthy while the coordinator has heard from it within a few heartbeats. */
export function health(lastSeenMs: number): "ok" | "late" {
  return lastSeenMs <= 3500 ? "ok" : "late";
}
