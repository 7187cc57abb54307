// The ranges the library accepts for a request (packages/runtime/src/request.ts, the
// planner's MAX_HOSTS), so the CLI can say what is wrong with a flag before it reads the
// prompt or loads weights; the library checks them again.
export const MAX_HOSTS = 4096;
export const MAX_NEW_TOKENS = 1_000_000;
export const MAX_TEMPERATURE = 100;
export const MAX_SEED = 2 ** 32 - 1;
