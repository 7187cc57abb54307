import { defineConfig } from "vitest/config";

// The browser tests drive a real Chromium against the built page; on a shared 2-core
// machine a test may take many times its idle duration, so the limits are generous.
export default defineConfig({ test: { testTimeout: 60_000, hookTimeout: 60_000 } });
