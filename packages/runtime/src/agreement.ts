// How close two runs' next-token distributions are: the measure used to show where an
// approximate strategy (APB, Star) agrees with full attention.

export interface Agreement {
  /** Both pick the same most likely token. */
  sameTop1: boolean;
  /** ||a - b|| / ||b|| over the logits. */
  relativeError: number;
}

export function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i]! > x[best]!) best = i;
  return best;
}

export function logitAgreement(a: ArrayLike<number>, reference: ArrayLike<number>): Agreement {
  let num = 0;
  let den = 0;
  for (let i = 0; i < reference.length; i++) {
    num += (a[i]! - reference[i]!) ** 2;
    den += reference[i]! ** 2;
  }
  return { sameTop1: argmax(a) === argmax(reference), relativeError: Math.sqrt(num / den) };
}

/** How many leading tokens two generations share. */
export function agreeingPrefix(a: readonly number[], b: readonly number[]): number {
  let n = 0;
  while (n < a.length && n < b.length && a[n] === b[n]) n++;
  return n;
}
