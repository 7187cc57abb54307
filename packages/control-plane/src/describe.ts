import type { HostFacts } from "@apb/protocol";

/** "host 2 (pid 4242 on node-a)": how every message and log line names a host, by rank when it has one. */
export function hostLabel(host: { hostId: string; rank: number | null; facts: HostFacts }): string {
  const who = host.rank === null ? `standby host ${host.hostId}` : `host ${host.rank}`;
  return `${who} (pid ${host.facts.pid} on ${host.facts.hostname || "an unnamed host"})`;
}

/** 30000 -> "30 s", 1500 -> "1.5 s": timeouts as people set them. */
export function seconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(ms < 10_000 ? 2 : 0))} s`;
}

/** Elapsed time: "12 ms" under a second, "3.5 s" above. */
export function duration(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : seconds(ms);
}

/** "1 token", "5 tokens" */
export function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

/** "1, 3 and 4" */
export function listed(items: readonly (string | number)[]): string {
  if (items.length <= 1) return items.join("");
  return `${items.slice(0, -1).join(", ")} and ${String(items[items.length - 1])}`;
}
