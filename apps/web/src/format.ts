// Numbers as the page shows them.

export function formatMs(ms: number): string {
  if (ms === 0) return "0";
  if (ms >= 10_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  if (ms >= 10) return `${ms.toFixed(0)} ms`;
  return `${ms.toFixed(1)} ms`;
}

const GiB = 1024 ** 3;

export function formatGiB(bytes: number): string {
  const g = bytes / GiB;
  return `${g >= 100 ? g.toFixed(0) : g.toFixed(1)} GiB`;
}

export function formatSpeedup(x: number | null): string {
  return x === null ? "–" : `${x.toFixed(2)}×`;
}
