// Builds a document of a given length in the model's own tokens, with needles (sentences that
// carry answers) placed at given depths in varied filler. Lengths are measured with the
// caller's tokenizer because "4K tokens" means different text for different vocabularies.
import { fillerSentence } from "./filler.js";
import type { Rng } from "./prng.js";

/** Tokens of `text` as the model sees it (no special tokens). */
export type CountTokens = (text: string) => number;

export interface Needle {
  text: string;
  /** Where it goes: 0 is the document's start, 1 its end (a fraction of its tokens). */
  depth: number;
}

export interface PlacedNeedle extends Needle {
  /** Character offset of the needle in the document. */
  offset: number;
}

export interface BuiltDocument {
  text: string;
  /** countTokens(text). */
  tokens: number;
  /** In the order given. */
  needles: PlacedNeedle[];
}

/** Filler sentences drawn on demand, with token counts (each with its leading space) summed. */
class Pool {
  readonly sentences: string[] = [];
  /** cum[j]: tokens of the first j sentences. */
  readonly cum: number[] = [0];
  constructor(
    private readonly rng: Rng,
    private readonly countTokens: CountTokens,
  ) {}

  ensure(n: number): void {
    while (this.sentences.length < n) {
      const s = fillerSentence(this.rng);
      this.sentences.push(s);
      this.cum.push(this.cum.at(-1)! + this.countTokens(` ${s}`));
    }
  }
}

/** The first `words` words of a sentence, closed with a full stop. */
function partial(sentence: string, words: number): string {
  return `${sentence.split(" ").slice(0, words).join(" ").replace(/[.,;:]$/, "")}.`;
}

/** Puts each needle at the sentence boundary nearest its depth, over `k` filler sentences. */
function assemble(pool: Pool, needles: readonly Needle[], needleTokens: readonly number[], k: number, words: number): { text: string; needles: PlacedNeedle[] } {
  const fillerTokens = pool.cum[k]!;
  const total = fillerTokens + needleTokens.reduce((x, y) => x + y, 0);
  // Sorted by depth (stable), each needle's target boundary accounts for the needles before it.
  const order = needles.map((_, i) => i).sort((x, y) => needles[x]!.depth - needles[y]!.depth);
  const at = new Map<number, number[]>(); // boundary -> needle indices
  let before = 0;
  let lastBoundary = 0;
  for (const i of order) {
    const want = needles[i]!.depth * total - before;
    let j = lastBoundary;
    while (j < k && Math.abs(pool.cum[j + 1]! - want) <= Math.abs(pool.cum[j]! - want)) j++;
    lastBoundary = j;
    at.set(j, [...(at.get(j) ?? []), i]);
    before += needleTokens[i]!;
  }
  const parts: string[] = [];
  const offsets: number[] = new Array(needles.length).fill(0);
  let length = 0;
  const push = (text: string) => {
    length += parts.length > 0 ? 1 : 0;
    parts.push(text);
    const start = length;
    length += text.length;
    return start;
  };
  for (let j = 0; j <= k; j++) {
    for (const i of at.get(j) ?? []) offsets[i] = push(needles[i]!.text);
    if (j < k) push(pool.sentences[j]!);
  }
  if (words > 0) push(partial(pool.sentences[k]!, words));
  return { text: parts.join(" "), needles: needles.map((n, i) => ({ ...n, offset: offsets[i]! })) };
}

/**
 * Fills to `targetTokens` (within a few tokens: the last filler sentence is cut at a word).
 * Token counts of single sentences estimate the size; the whole text is counted only a few
 * times (galloping, then bisecting), so 128K-token documents stay cheap to make.
 */
export function buildDocument(o: { targetTokens: number; needles: readonly Needle[]; rng: Rng; countTokens: CountTokens }): BuiltDocument {
  const { needles, countTokens, targetTokens } = o;
  const pool = new Pool(o.rng, countTokens);
  const needleTokens = needles.map((n) => countTokens(` ${n.text}`));
  const measured = new Map<string, { text: string; needles: PlacedNeedle[]; tokens: number }>();
  const measure = (k: number, words: number) => {
    const key = `${k}:${words}`;
    let m = measured.get(key);
    if (!m) {
      pool.ensure(k + 1);
      const built = assemble(pool, needles, needleTokens, k, words);
      m = { ...built, tokens: countTokens(built.text) };
      measured.set(key, m);
    }
    return m;
  };
  if (measure(0, 0).tokens > targetTokens) {
    throw new RangeError(`the needles alone take ${measure(0, 0).tokens} tokens, more than the ${targetTokens} asked for`);
  }
  // Estimate from per-sentence counts, then find the largest k that fits.
  const budget = targetTokens - needleTokens.reduce((x, y) => x + y, 0);
  let k = 0;
  for (pool.ensure(1); pool.cum[k + 1]! <= budget; k++) pool.ensure(k + 2);
  let lo = 0;
  let hi = k + 1; // invariant: measure(lo) fits, measure(hi) does not (or is untested above)
  if (measure(k, 0).tokens <= targetTokens) {
    lo = k;
    for (let step = 1; ; step *= 2) {
      hi = lo + step;
      if (measure(hi, 0).tokens > targetTokens) break;
      lo = hi;
    }
  } else {
    hi = k;
    for (let step = 1; ; step *= 2) {
      lo = Math.max(0, hi - step);
      if (measure(lo, 0).tokens <= targetTokens) break;
      hi = lo;
    }
  }
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (measure(mid, 0).tokens <= targetTokens) lo = mid;
    else hi = mid;
  }
  // Then as many words of the next sentence as still fit.
  let wLo = 0;
  let wHi = pool.sentences[lo]!.split(" ").length;
  while (wHi - wLo > 1) {
    const mid = (wLo + wHi) >> 1;
    if (measure(lo, mid).tokens <= targetTokens) wLo = mid;
    else wHi = mid;
  }
  const best = measure(lo, wLo);
  return { text: best.text, tokens: best.tokens, needles: best.needles };
}
