// A small seeded PRNG so every case is a pure function of (seed, length, index): the same
// suite can be rerun on another machine, model or strategy and compared case by case.

export interface Rng {
  /** Uniform in [0, 1). */
  next(): number;
  /** Uniform integer in [lo, hi] (inclusive). */
  int(lo: number, hi: number): number;
  pick<T>(items: readonly T[]): T;
  /** `count` distinct items, in random order. */
  sample<T>(items: readonly T[], count: number): T[];
}

/** mulberry32: 32 bits of state, good enough to vary text, trivially portable. */
export function createRng(seed: number): Rng {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1));
  return {
    next,
    int,
    pick: (items) => {
      if (items.length === 0) throw new Error("pick from an empty list");
      return items[int(0, items.length - 1)]!;
    },
    sample: (items, count) => {
      if (count > items.length) throw new Error(`cannot sample ${count} distinct items from ${items.length}`);
      const pool = [...items];
      // Partial Fisher-Yates: only the first `count` slots are drawn.
      for (let i = 0; i < count; i++) {
        const j = int(i, pool.length - 1);
        [pool[i], pool[j]] = [pool[j]!, pool[i]!];
      }
      return pool.slice(0, count);
    },
  };
}

/** Mixes integers into one 32-bit seed (murmur3's finalizer after each), so nearby inputs
 * (seed 1 vs 2, case 3 vs 4) give unrelated streams. */
export function mixSeed(...parts: number[]): number {
  let h = 0x9e3779b9;
  for (const part of parts) {
    h = Math.imul(h ^ (part >>> 0), 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
    // Integers beyond 32 bits (a length of 8M is fine, a seed of 2^40 is not lost entirely).
    h = Math.imul(h ^ Math.floor(part / 4294967296), 0x27d4eb2f);
  }
  return h >>> 0;
}
