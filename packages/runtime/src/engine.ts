// The Engine API the apps use: open a model (directory, GGUF file or named model), load its weights into the native
// engine, and generate with any strategy over emulated hosts, or run one host's part of a
// request when hosts are processes.
import { Engine as NativeEngine, type DataPlane, type GenerateResult } from "@apb/native";
import { CallControl } from "./call-control.js";
import { RuntimeError } from "./errors.js";
import { describeGeneration, type Generation, type HostTiming } from "./generation.js";
import { openModelDir, type ModelDir } from "./model-dir.js";
import { resolveModel } from "./models.js";
import { native } from "./native-errors.js";
import { splitPrompt, type PromptTokens } from "./prompt.js";
import { buildHostRequest, configSpec, nativeSpec, type GenerateOptions, type HostRequest, type PrefillProgress, type Strategy } from "./request.js";
import type { ChatMessage } from "./tokenizer.js";

export const BACKENDS = ["cpu", "cuda"] as const;
export type BackendName = (typeof BACKENDS)[number];

export interface LoadOptions {
  /** "cpu" (default) or "cuda" (bf16 weights, cuBLAS, apb's attention kernels). */
  backend?: BackendName;
  /** The GPU a CUDA model loads on (default 0); one process per GPU. */
  gpu?: number;
  /** A safetensors file of Locret retaining heads. */
  retainingHeads?: string;
  /** Called as weights load: `done` of `total` steps (embeddings, each layer, the final norm).
   * If it throws, loading stops and loadModel rejects with what it threw. */
  onProgress?: (done: number, total: number) => void;
  /** Aborting stops the load before its next tensor; loadModel rejects with CANCELLED. */
  signal?: AbortSignal;
}

/** One host's part of a request, as that host ran it. */
export interface HostRun {
  rank: number;
  tokens: number[];
  /** The first generated token's logits (the same on every host: partials are merged). */
  firstLogits: Float32Array;
  anchorTokens: number;
  passingTokens: number;
  blockTokens: number;
  /** This host's own time: prefill split into compute and comm, and per phase. */
  timing: HostTiming & { computeMs: number; commMs: number };
  prefillWallMs: number;
  /** From this host's call to the first token (every host holds it once chosen). */
  firstTokenWallMs: number;
  totalWallMs: number;
}

export class Model {
  private constructor(
    readonly dir: ModelDir,
    private readonly engine: NativeEngine,
  ) {}

  static async load(path: string, options: LoadOptions = {}): Promise<Model> {
    const control = new CallControl("load", options.signal);
    const dir = await openModelDir(await resolveModel(path), options.retainingHeads === undefined ? {} : { retainingHeads: options.retainingHeads });
    control.throwIfAborted();
    const progress = options.onProgress;
    // Progress arrives through a queue that may drain after the load resolves; the last
    // step is reported here, once the weights really are loaded.
    const steps = dir.config.layers + 2;
    let lastDone = 0;
    let loaded = false;
    const report = progress
      ? control.guard(([done, total]: [number, number]) => {
          if (!loaded && done > lastDone && done < steps) {
            lastDone = done;
            progress(done, total);
          }
        })
      : undefined;
    let engine: NativeEngine;
    try {
      engine = await control.run(
        (token) =>
          NativeEngine.load(
            {
              config: configSpec(dir.config),
              tensors: dir.tensors,
              ...(dir.retaining ? { retaining: dir.retaining.tensors } : {}),
              backend: options.backend ?? "cpu",
              ...(options.gpu !== undefined ? { gpu: options.gpu } : {}),
            },
            report,
            token,
          ),
        (engine) => engine.dispose(),
      );
    } finally {
      // Steps still queued arrive after this, whether the load succeeded or not; they are
      // dropped (a caller's progress bar is stopped by now).
      loaded = true;
    }
    try {
      progress?.(steps, steps);
    } catch (e) {
      engine.dispose();
      throw e;
    }
    return new Model(dir, engine);
  }

  /** Frees the weights (those of a generation still running, when it ends); later calls
   * reject with DISPOSED. Calling it again does nothing. */
  dispose(): void {
    this.engine.dispose();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.dispose();
  }

  get disposed(): boolean {
    return this.engine.disposed;
  }

  private checkLive(): void {
    if (this.engine.disposed) {
      throw new RuntimeError({ code: "DISPOSED", path: "model", message: `the model ${this.dir.path} was disposed and its weights freed; load the model again (loadModel) to use it` });
    }
  }

  get backend(): string {
    return this.engine.backend;
  }

  /** The prompt as APB sees it: BOS/system prefix, document, and the query with the template's tail. */
  tokenize(document: string, query: string, messages?: ChatMessage[], answerPrefix?: string): PromptTokens {
    return splitPrompt(this.dir.tokenizer, { document, query, ...(messages ? { messages } : {}), ...(answerPrefix ? { answerPrefix } : {}) });
  }

  async generate(options: GenerateOptions): Promise<Generation> {
    const called = performance.now();
    const control = new CallControl("generate", options.signal);
    this.checkLive();
    const { request, prompt } = buildHostRequest(this.dir, options);
    const stop = request.stopTokenIds;
    const tokenizer = this.dir.tokenizer;
    // Tokens arrive through a queue that may drain after generation resolves: whatever has
    // not arrived by then is delivered in order before generate() returns, exactly once.
    // Byte-level tokens can end inside a UTF-8 character, which decodes to U+FFFD until the
    // next token completes it, so a trailing U+FFFD is held back rather than shown.
    const streamed: number[] = [];
    let shown = "";
    let finished = false;
    const emit = control.guard((id: number) => {
      streamed.push(id);
      const stable = tokenizer.decode(streamed, { skipSpecialTokens: true }).replace(/\uFFFD+$/, "");
      const fresh = stable.startsWith(shown) ? stable.slice(shown.length) : "";
      if (fresh) shown = stable;
      options.onToken!(fresh, id);
    });
    const onToken = options.onToken ? (id: number) => void (finished || emit(id)) : undefined;
    const progress = options.onProgress ? control.guard(options.onProgress) : undefined;
    const onProgress = progress ? (p: PrefillProgress) => void (finished || progress(p)) : undefined;
    const beforeNative = performance.now() - called;
    let result: GenerateResult;
    try {
      result = await control.run((token) => this.engine.generate(nativeSpec(request), onToken, onProgress, token));
    } finally {
      // Callbacks still queued are not delivered after a failure; after success the tokens
      // are delivered below, in order.
      finished = true;
    }
    if (options.onToken) {
      result.tokens.slice(streamed.length).forEach(emit);
      // Generation ended inside a character: its last call delivers what was held back.
      const text = tokenizer.decode(result.tokens, { skipSpecialTokens: true });
      const last = result.tokens.at(-1);
      if (last !== undefined && text !== shown && text.startsWith(shown)) control.guard(options.onToken)(text.slice(shown.length), last);
      control.throwIfCallbackFailed();
    }
    return this.describe(result, request.strategy, prompt, stop, { beforeNative, total: performance.now() - called });
  }

  /**
   * Runs this host's part of `request` on a data plane joined to the other hosts of its
   * group (each host a process; see tcpListen and connectNccl). Every host of the group
   * must run the same request; only the last host calls `onTokenId`. `onProgress` hears
   * this host finish each layer of its prefill; if it throws, the call rejects with that
   * error once this host's part is done (a host cannot leave its group mid-request).
   */
  async runHost(request: HostRequest, plane: DataPlane, onTokenId?: (id: number) => void, onProgress?: (p: PrefillProgress) => void): Promise<HostRun> {
    this.checkLive();
    // No signal: a host cannot leave its group mid-request. A throwing onProgress is kept and
    // rethrown once this host's part is done (the token it cancels never reaches the addon).
    const control = new CallControl("generate", undefined);
    const report = onProgress ? control.guard(onProgress) : undefined;
    // Tokens cross threads without blocking the host, so some may arrive after the call
    // resolves: those not yet delivered are delivered then, in order, and late ones dropped.
    let delivered = 0;
    let finished = false;
    const onToken = onTokenId
      ? (id: number) => {
          if (finished) return;
          delivered += 1;
          onTokenId(id);
        }
      : undefined;
    const r = await native(() => this.engine.generateHost(nativeSpec({ ...request, hosts: plane.size }), plane, onToken, report));
    finished = true;
    if (onTokenId && plane.rank === plane.size - 1) r.tokens.slice(delivered).forEach((id) => onTokenId(id));
    control.throwIfCallbackFailed();
    const t = r.timing;
    const commMs = t.phasesMs.comm ?? 0;
    return {
      rank: plane.rank,
      tokens: r.tokens,
      firstLogits: r.firstLogits,
      anchorTokens: r.anchorTokens,
      passingTokens: r.passingTokens,
      blockTokens: r.blockTokens,
      timing: { host: t.host, prefillMs: t.prefillMs, prefillRows: t.prefillRows, phasesMs: { ...t.phasesMs }, computeMs: t.prefillMs - commMs, commMs },
      prefillWallMs: r.prefillWallMs,
      firstTokenWallMs: r.firstTokenWallMs,
      totalWallMs: r.totalWallMs,
    };
  }

  /** Joins an NCCL group on this model's GPU; `uniqueId` comes from ncclUniqueId() on rank 0. */
  connectNccl(uniqueId: string, rank: number, size: number, timeoutMs: number): Promise<DataPlane> {
    this.checkLive();
    return native(() => this.engine.connectNccl(uniqueId, rank, size, timeoutMs));
  }

  /** GPU memory of a CUDA model (null on the CPU). */
  gpuMemory(): { freeBytes: number; totalBytes: number } | null {
    this.checkLive();
    const m = this.engine.gpuMemory(false);
    return m ? { freeBytes: m.freeBytes, totalBytes: m.totalBytes } : null;
  }

  /** `wall.beforeNative`: ms from the generate() call to the addon's call (checking,
   * tokenizing); `wall.total`: to its return. */
  private describe(r: GenerateResult, strategy: Strategy, prompt: PromptTokens, stop: number[], wall: { beforeNative: number; total: number }): Generation {
    const hosts = r.hosts.map((h) => ({ host: h.host, prefillMs: h.prefillMs, prefillRows: h.prefillRows, phasesMs: { ...h.phasesMs } }));
    return describeGeneration(this.dir, {
      strategy,
      prompt,
      stop,
      tokens: r.tokens,
      firstLogits: r.firstLogits,
      sizes: { anchorTokens: r.anchorTokens, passingTokens: r.passingTokens, blockTokens: r.blockTokens },
      hosts,
      prefillWallMs: r.prefillWallMs,
      firstTokenWallMs: wall.beforeNative + r.firstTokenWallMs,
      emulatedHosts: true,
      totalWallMs: wall.total,
    });
  }
}

/** Opens a model (a Hugging Face directory, a GGUF file, or a named model such as
 * "smollm2-135m-instruct", fetched into the cache on first use) and loads its weights. */
export function loadModel(path: string, options: LoadOptions = {}): Promise<Model> {
  return Model.load(path, options);
}
