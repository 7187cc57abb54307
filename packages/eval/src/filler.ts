// Filler text: plain narrative sentences drawn from templates and word lists. Varied text
// matters: a model fed one sentence repeated thousands of times degenerates (it predicts the
// repetition, attention collapses onto it), which would measure the filler, not the strategy.
import type { Rng } from "./prng.js";
import { ADJECTIVES, ADVERBS, INTRANSITIVE, PEOPLE, PLACES, THINGS, TIMES, VERBS, WEATHER } from "./words.js";

type Template = (r: Rng) => string;

const a = (word: string) => (/^[aeiou]/.test(word) ? `an ${word}` : `a ${word}`);

const TEMPLATES: readonly Template[] = [
  (r) => `The ${r.pick(ADJECTIVES)} ${r.pick(PEOPLE)} ${r.pick(VERBS)} the ${r.pick(THINGS)} near the ${r.pick(PLACES)}.`,
  (r) => `${r.pick(TIMES)}, ${a(r.pick(ADJECTIVES))} ${r.pick(PEOPLE)} ${r.pick(VERBS)} ${a(r.pick(THINGS))} in the ${r.pick(PLACES)}.`,
  (r) => `The ${r.pick(PEOPLE)} said that the ${r.pick(THINGS)} in the ${r.pick(PLACES)} was ${r.pick(ADJECTIVES)}.`,
  (r) => `It was ${r.pick(WEATHER)} by the ${r.pick(PLACES)}, so the ${r.pick(PEOPLE)} ${r.pick(INTRANSITIVE)} ${r.pick(ADVERBS)}.`,
  (r) => `After the ${r.pick(PEOPLE)} ${r.pick(INTRANSITIVE)}, the ${r.pick(PEOPLE)} ${r.pick(VERBS)} the ${r.pick(ADJECTIVES)} ${r.pick(THINGS)}.`,
  (r) => `Nobody at the ${r.pick(PLACES)} ${r.pick(VERBS)} the ${r.pick(THINGS)} until the ${r.pick(PEOPLE)} ${r.pick(INTRANSITIVE)}.`,
  (r) => `${r.pick(TIMES)}, the ${r.pick(PEOPLE)}s of the ${r.pick(PLACES)} ${r.pick(INTRANSITIVE)} ${r.pick(ADVERBS)}.`,
  (r) => `A ${r.pick(WEATHER)} wind crossed the ${r.pick(PLACES)} while the ${r.pick(PEOPLE)} ${r.pick(VERBS)} ${a(r.pick(THINGS))}.`,
  (r) => `The ${r.pick(THINGS)} that the ${r.pick(PEOPLE)} ${r.pick(VERBS)} was ${r.sample(ADJECTIVES, 2).join(" and ")}.`,
  (r) => `Everyone knew the ${r.pick(PEOPLE)} who ${r.pick(INTRANSITIVE)} ${r.pick(ADVERBS)} beside the ${r.pick(ADJECTIVES)} ${r.pick(PLACES)}.`,
  (r) => `Her ${r.pick(THINGS)} and his ${r.pick(THINGS)} stayed in the ${r.pick(PLACES)} for ${a(r.pick(ADJECTIVES))} season.`,
  (r) => `When the ${r.pick(PEOPLE)} ${r.pick(INTRANSITIVE)}, the ${r.pick(ADJECTIVES)} ${r.pick(THINGS)} was ${r.pick(ADVERBS)} forgotten.`,
];

export function fillerSentence(rng: Rng): string {
  const sentence = rng.pick(TEMPLATES)(rng);
  return sentence[0]!.toUpperCase() + sentence.slice(1);
}
