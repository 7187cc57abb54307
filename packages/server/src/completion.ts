// One request's job: its prompt tokenized and checked, a place in the queue, the job on the
// group, the answer as text as the tokens arrive (cut at a stop string), and what the
// response reports: usage and apb's layout and timings.
import { performance } from "node:perf_hooks";
import type { JobResult } from "@apb/protocol";
import { buildHostRequest, checkPromptLength, jobOf, STRATEGIES, tokenText, type HostRequest, type ModelDir, type PromptTokens, type Strategy } from "@apb/runtime";
import type { Admission } from "./admission.js";
import { ServerError } from "./errors.js";
import type { JobGroup } from "./group.js";
import type { ServerMetrics } from "./metrics.js";
import type { PromptParts } from "./prompt.js";
import type { ApbOptions } from "./schema.js";
import { StopStrings } from "./stop-strings.js";

/** The sampling fields both endpoints share, as validated. */
export interface Sampling {
  max_tokens?: number | null | undefined;
  max_completion_tokens?: number | null | undefined;
  temperature?: number | null | undefined;
  top_p?: number | null | undefined;
  seed?: number | null | undefined;
  stop?: string | string[] | null | undefined;
  ignore_eos?: boolean | undefined;
  apb?: ApbOptions | undefined;
}

export interface CompletionSettings {
  strategy: Strategy;
  /** max_tokens when a request gives none (capped by what the model's positions leave). */
  defaultMaxTokens: number;
  /** How long a request waits for the group to form before 503. */
  groupWaitMs: number;
}

/** A request ready to run: tokenized and checked, nothing sent yet. */
export interface Prepared {
  request: HostRequest;
  prompt: PromptTokens;
  /** Prefix, document and query together: the request's usage.prompt_tokens. */
  promptTokens: number;
  stops: string[];
}

/** What a response reports about apb's work (snake_case, as the rest of the body). */
export interface ApbReport {
  strategy: Strategy;
  hosts: number;
  anchor_tokens: number;
  passing_tokens: number;
  block_tokens: number;
  prompt_tokens: { prefix: number; document: number; query: number };
  timings: {
    /** Wall time from the request's arrival to its first token, as the client waited. */
    first_token_ms: number | null;
    /** Time the request waited for the group and the jobs ahead of it. */
    queue_ms: number | null;
    /** The slowest host's prefill wall time. */
    prefill_wall_ms: number | null;
    /** Wall time of the whole request so far. */
    total_ms: number;
    hosts: { host: number; prefill_ms: number; prefill_wall_ms: number; compute_ms: number; comm_ms: number }[];
  };
}

export interface Outcome {
  text: string;
  finishReason: "stop" | "length";
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
  apb: ApbReport;
}

export interface RunEvents {
  /** The job has started on the group (the first progress or token): a stream may begin. */
  onStart(): void;
  onText(piece: string): void;
}

/** The runtime's names for what a request sets, as the request names it. */
const REQUEST_FIELDS: Record<string, string> = {
  maxTokens: "max_tokens",
  temperature: "temperature",
  topP: "top_p",
  seed: "seed",
  strategy: "apb.strategy",
  hosts: "apb.strategy",
  anchorTokens: "apb.anchor_tokens",
  passingTokens: "apb.passing_tokens",
  balanced: "apb.balanced",
  stopTokenIds: "apb.stop_token_ids",
};

/** Runs `f`, and gives an error it throws the path of the request's field (the runtime names its own options). */
function inRequestTerms<T>(parts: PromptParts, f: () => T): T {
  try {
    return f();
  } catch (e) {
    const o = e as { code?: unknown; message?: unknown; path?: unknown };
    if (typeof o.code !== "string" || typeof o.message !== "string" || typeof o.path !== "string") throw e;
    const head = o.path.split(/[.[]/)[0]!;
    const field = head === "document" || head === "context" ? parts.fields.document : head === "query" || head === "queryTokens" ? parts.fields.query : REQUEST_FIELDS[head];
    if (field === undefined) throw e;
    throw new ServerError({ code: o.code as ServerError["code"], message: o.message, path: field });
  }
}

/** The prefill wall time of a job's slowest host (null for a result with no hosts). */
function slowestPrefillWallMs(result: JobResult): number | null {
  return result.hosts.length ? Math.max(...result.hosts.map((h) => h.timings.prefillWallMs)) : null;
}

export class Completions {
  constructor(
    private readonly dir: ModelDir,
    private readonly group: JobGroup,
    private readonly admission: Admission,
    private readonly metrics: ServerMetrics,
    private readonly settings: CompletionSettings,
  ) {}

  /** Tokenizes and checks a request (the runtime's errors name the field); sends nothing. */
  prepare(parts: PromptParts, s: Sampling): Prepared {
    const apb = s.apb ?? {};
    const stopTokenIds = s.ignore_eos ? [] : (apb.stop_token_ids ?? this.dir.config.eosTokenIds);
    const vocab = this.dir.config.vocab;
    const outside = stopTokenIds.findIndex((id) => id >= vocab);
    if (outside >= 0) {
      throw new ServerError({ code: "OUT_OF_RANGE", path: `apb.stop_token_ids[${outside}]`, message: `apb.stop_token_ids[${outside}] is ${stopTokenIds[outside]}, outside the model's vocabulary of ${vocab} ids` });
    }
    const asked = s.max_tokens ?? s.max_completion_tokens ?? null;
    const worldSize = this.group.status().worldSize;
    const { request, prompt } = inRequestTerms(parts, () => buildHostRequest(this.dir, {
      document: parts.document,
      query: parts.query,
      ...(parts.messages.length ? { messages: parts.messages } : {}),
      chatTemplate: parts.chatTemplate,
      strategy: apb.strategy ?? this.settings.strategy,
      hosts: worldSize,
      ...(apb.anchor_tokens !== undefined ? { anchorTokens: apb.anchor_tokens } : {}),
      ...(apb.passing_tokens !== undefined ? { passingTokens: apb.passing_tokens } : {}),
      ...(apb.balanced !== undefined ? { balanced: apb.balanced } : {}),
      maxTokens: asked ?? 0,
      temperature: s.temperature ?? 0,
      topP: s.top_p ?? 1,
      seed: s.seed ?? 0,
      stopTokenIds,
      // Checked below, once max_tokens is known.
      allowLongPrompt: true,
    }));
    if (request.hosts !== worldSize) {
      // Full attention plans one host; a group runs every job on all of its hosts.
      throw new ServerError({
        code: "INVALID_INPUT",
        path: "apb.strategy",
        message: `strategy ${request.strategy} runs on ${request.hosts} host${request.hosts > 1 ? "s" : ""} but this server's group has ${worldSize}; choose one of ${STRATEGIES.filter((x) => x !== "full").join(", ")} (or serve with --hosts 1 for full attention)`,
      });
    }
    const promptTokens = prompt.prefix.length + prompt.document.length + prompt.query.length;
    // Without max_tokens the answer may run to the model's last position, up to the server's default.
    const maxTokens = asked ?? Math.max(1, Math.min(this.settings.defaultMaxTokens, this.dir.config.maxPositions - promptTokens));
    if (!apb.allow_long_prompt) inRequestTerms(parts, () => checkPromptLength(this.dir.config.maxPositions, prompt, maxTokens));
    const stops = s.stop == null ? [] : typeof s.stop === "string" ? [s.stop] : s.stop;
    return { request: { ...request, maxTokens }, prompt, promptTokens, stops };
  }

  /**
   * Runs a prepared request on the group. Resolves with the answer when the job ends, or as
   * soon as a stop string is met (the job then runs to its end on the hosts, holding its place
   * in the queue, and only then is observed in the metrics). Aborting `signal` cancels the job
   * on every host.
   */
  async run(p: Prepared, events: RunEvents, signal: AbortSignal, arrivedAt: number): Promise<Outcome> {
    const place = this.admission.enter();
    const submittedAt = performance.now();
    let startedAt: number | null = null;
    let firstTokenAt: number | null = null;
    let answer = "";
    let tokens = 0;
    const start = () => {
      if (startedAt !== null) return;
      startedAt = performance.now();
      events.onStart();
    };
    const stops = new StopStrings(p.stops);
    let stoppedEarly: ((o: Outcome) => void) | null = null;
    const early = new Promise<Outcome>((resolve) => (stoppedEarly = resolve));
    const show = (piece: string) => {
      if (!piece) return;
      answer += piece;
      events.onText(piece);
    };
    const text = tokenText(this.dir, (piece) => {
      if (stops.done) return;
      show(stops.push(piece));
      if (stops.done) stoppedEarly?.(this.outcome(p, answer, "stop", tokens, null, { arrivedAt, submittedAt, startedAt, firstTokenAt }));
    });
    const job = this.group
      .submit(jobOf(p.request), {
        signal,
        groupTimeoutMs: this.settings.groupWaitMs,
        onProgress: start,
        onToken: (id) => {
          start();
          firstTokenAt ??= performance.now();
          tokens += 1;
          text.push(id);
        },
      })
      .then(
        (result) => {
          place.release(performance.now() - (startedAt ?? submittedAt));
          this.observe(p, result, arrivedAt, firstTokenAt);
          return result;
        },
        (error: unknown) => {
          place.release(null);
          // The group says CANCELLED; why the server cancelled (a drain's SHUTDOWN) says more.
          throw signal.aborted && signal.reason instanceof ServerError ? signal.reason : error;
        },
      );
    const finished = job.then((result) => {
      if (!stops.done) {
        text.finish(result.tokens);
        show(stops.flush());
      }
      const last = result.tokens.at(-1);
      const reason = stops.done || (last !== undefined && p.request.stopTokenIds.includes(last)) ? "stop" : "length";
      return this.outcome(p, answer, reason, result.tokens.length, result, { arrivedAt, submittedAt, startedAt, firstTokenAt });
    });
    // A job that fails after a stop string ended the answer has nothing left to tell the client.
    finished.catch(() => undefined);
    return Promise.race([finished, early]);
  }

  private outcome(
    p: Prepared,
    text: string,
    finishReason: "stop" | "length",
    completionTokens: number,
    result: JobResult | null,
    t: { arrivedAt: number; submittedAt: number; startedAt: number | null; firstTokenAt: number | null },
  ): Outcome {
    const promptTokens = p.promptTokens;
    const last = result?.hosts.at(-1);
    const hosts = result?.hosts ?? [];
    return {
      text,
      finishReason,
      usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens },
      apb: {
        strategy: p.request.strategy,
        hosts: p.request.hosts,
        anchor_tokens: last?.anchorTokens ?? 0,
        passing_tokens: last?.passingTokens ?? 0,
        block_tokens: last?.blockTokens ?? 0,
        prompt_tokens: { prefix: p.prompt.prefix.length, document: p.prompt.document.length, query: p.prompt.query.length },
        timings: {
          first_token_ms: t.firstTokenAt === null ? null : t.firstTokenAt - t.arrivedAt,
          queue_ms: t.startedAt === null ? null : t.startedAt - t.submittedAt,
          prefill_wall_ms: result ? slowestPrefillWallMs(result) : null,
          total_ms: performance.now() - t.arrivedAt,
          hosts: hosts.map((h) => ({ host: h.rank, prefill_ms: h.timings.prefillMs, prefill_wall_ms: h.timings.prefillWallMs, compute_ms: h.timings.computeMs, comm_ms: h.timings.commMs })),
        },
      },
    };
  }

  private observe(p: Prepared, result: JobResult, arrivedAt: number, firstTokenAt: number | null): void {
    const m = this.metrics;
    const now = performance.now();
    if (firstTokenAt !== null) m.firstToken.observe((firstTokenAt - arrivedAt) / 1000);
    const prefillWallMs = slowestPrefillWallMs(result);
    if (prefillWallMs !== null) m.prefill.observe(prefillWallMs / 1000);
    for (const h of result.hosts) {
      m.hostPrefill.observe({ host: String(h.rank) }, h.timings.prefillMs / 1000);
      m.hostComm.observe({ host: String(h.rank) }, h.timings.commMs / 1000);
    }
    const after = result.tokens.length - 1;
    if (firstTokenAt !== null && after > 0 && now > firstTokenAt) m.decodeRate.observe(after / ((now - firstTokenAt) / 1000));
    m.promptTokens.inc(p.promptTokens);
    m.generatedTokens.inc(result.tokens.length);
  }
}
