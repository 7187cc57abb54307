export const GiB = 1024 ** 3;

export function ms(x: number): string {
  return x >= 100 ? x.toFixed(0) : x.toFixed(1);
}

export function gib(bytes: number): string {
  return (bytes / GiB).toFixed(1);
}

export function tflop(flops: number): string {
  return (flops / 1e12).toFixed(0);
}

export function tokens(n: number): string {
  if (n >= 1024 * 1024 && n % (1024 * 1024) === 0) return `${n / (1024 * 1024)}M`;
  if (n >= 1024 && n % 1024 === 0) return `${n / 1024}K`;
  return String(n);
}
