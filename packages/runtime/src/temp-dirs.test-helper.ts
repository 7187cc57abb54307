// Test support: fresh temporary directories, removed after the file's tests, and fresh seeds.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll } from "vitest";

/** Call at a test file's top level; the returned function makes a new directory each time. */
export function tempDirs(prefix: string): () => Promise<string> {
  const made: string[] = [];
  afterAll(() => Promise.all(made.map((dir) => rm(dir, { recursive: true, force: true }))));
  return async () => {
    const dir = await mkdtemp(join(tmpdir(), `apb-runtime-${prefix}-`));
    made.push(dir);
    return dir;
  };
}

export const freshSeed = () => Math.floor(Math.random() * 2 ** 32);
