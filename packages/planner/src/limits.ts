// Input bounds, the same numbers the Rust planner enforces (crates/apb-plan/src/input.rs):
// checked here first so a caller gets a zod message before anything crosses into wasm.
export const MAX_TOKENS = 2_147_483_647;
export const MAX_HOSTS = 4096;
export const MAX_RECOMMEND_HOSTS = 1024;
export const LIMITS = {
  layers: 1024,
  hidden: 1_048_576,
  heads: 1024,
  headDim: 1024,
  intermediate: 16_777_216,
  vocab: 16_777_216,
  retainingHidden: 65_536,
  bytes: 8,
  tflops: 100_000,
  gbs: 1_000_000,
  latencyUs: 1_000_000,
  memoryGiB: 1_048_576,
  multiprocessors: 100_000,
} as const;
