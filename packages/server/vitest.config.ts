import { defineConfig } from "vitest/config";

// These tests check what the code does, never how fast: on a 2-core CI machine the engine's
// threads and the other packages' tests (several spawn processes) run beside them, so a
// test may take many times its idle duration. Speed is measured in benchmarks.
export default defineConfig({ test: { testTimeout: 60_000, hookTimeout: 60_000 } });
