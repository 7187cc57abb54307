// Word lists. Filler words and answer words are disjoint (a test checks it), so an answer can
// only be found where a needle put it, and filler never contains digits or the needles' own
// phrasing ("special magic", "VAR").

export const PEOPLE = [
  "farmer", "teacher", "sailor", "baker", "clerk", "painter", "doctor", "merchant", "traveller", "gardener",
  "musician", "student", "weaver", "miller", "fisherman", "poet", "nurse", "carpenter", "shepherd", "librarian",
  "blacksmith", "potter", "mayor", "courier",
] as const;

export const THINGS = [
  "lantern", "basket", "ledger", "letter", "bridge", "wagon", "window", "garden", "candle", "map",
  "coat", "bell", "boat", "kettle", "fence", "rope", "book", "cart", "ladder", "blanket",
  "barrel", "chair", "table", "gate", "roof", "clock", "drawer", "shovel", "bucket", "painting",
  "stove", "jacket", "notebook", "saddle", "curtain", "wheel",
] as const;

export const PLACES = [
  "market", "harbour", "valley", "village", "library", "kitchen", "meadow", "station", "forest", "square",
  "workshop", "hillside", "chapel", "courtyard", "riverbank", "bakery", "school", "mill", "inn", "farmhouse",
  "orchard", "field", "cellar", "attic",
] as const;

export const ADJECTIVES = [
  "old", "quiet", "narrow", "bright", "heavy", "small", "wooden", "distant", "careful", "patient",
  "cold", "warm", "crowded", "empty", "gentle", "tall", "broken", "dusty", "green", "faded",
  "busy", "sturdy", "pale", "muddy", "cheerful", "tired", "familiar", "plain",
] as const;

export const VERBS = [
  "carried", "painted", "repaired", "opened", "watched", "found", "counted", "cleaned", "mended", "visited",
  "described", "borrowed", "followed", "lifted", "sold", "bought", "measured", "studied", "moved", "noticed",
  "polished", "wrapped", "inspected", "remembered",
] as const;

export const INTRANSITIVE = [
  "waited", "rested", "laughed", "slept", "travelled", "sang", "wandered", "listened", "paused", "returned",
  "shivered", "smiled", "hurried", "worked", "whistled", "sighed",
] as const;

export const ADVERBS = [
  "slowly", "quietly", "early", "carefully", "again", "briefly", "patiently", "twice", "happily", "late",
  "gladly", "often", "seldom", "suddenly",
] as const;

export const TIMES = [
  "In the morning", "Later that day", "Every autumn", "Before dawn", "On most evenings", "During the long winter",
  "Some years ago", "At noon", "After the storm", "When the rain stopped", "Once a week", "By the end of summer",
] as const;

export const WEATHER = ["windy", "foggy", "sunny", "grey", "still", "humid", "cloudy", "bitter"] as const;

/** Answers of the word needles: uncommon nouns that no filler sentence uses. */
export const VALUE_WORDS = [
  "amethyst", "bagpipe", "cactus", "dolphin", "eucalyptus", "flamingo", "gazelle", "hazelnut", "iguana", "jasmine",
  "kaleidoscope", "labyrinth", "mandolin", "nebula", "octopus", "pelican", "quartz", "raccoon", "sapphire", "tambourine",
  "volcano", "walrus", "xylophone", "zucchini", "avalanche", "blizzard", "cinnamon", "dragonfly", "emerald", "falcon",
  "glacier", "harmonica", "igloo", "jaguar", "koala", "lemur", "meteor", "nutmeg", "origami", "penguin",
  "rhubarb", "saxophone", "tornado", "unicorn", "vanilla", "waffle", "zebra", "asteroid", "buffalo", "coconut",
  "dandelion", "espresso", "fjord", "geyser", "hammock", "marzipan", "porcupine", "trombone", "pistachio", "chameleon",
] as const;

/** Keys are `${KEY_ADJECTIVES}-${KEY_NOUNS}`: 400 of them, similar enough to be confusable. */
export const KEY_ADJECTIVES = [
  "crimson", "silent", "brave", "hollow", "amber", "frozen", "golden", "rapid", "velvet", "lucky",
  "hidden", "scarlet", "wild", "curious", "ancient", "humble", "noble", "sleepy", "stormy", "swift",
] as const;

export const KEY_NOUNS = [
  "orchid", "compass", "tower", "comet", "violin", "pebble", "thimble", "spindle", "beacon", "kestrel",
  "acorn", "cobblestone", "marble", "lighthouse", "parsnip", "teacup", "thistle", "feather", "button", "ribbon",
] as const;

/** Every word a filler sentence can contain (for the disjointness check). */
export const FILLER_WORDS: readonly string[] = [PEOPLE, THINGS, PLACES, ADJECTIVES, VERBS, INTRANSITIVE, ADVERBS, TIMES, WEATHER]
  .flat()
  .flatMap((w) => w.toLowerCase().split(" "));
