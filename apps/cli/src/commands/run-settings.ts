// `apb run`'s flags, every one checked before the prompt is read or a weight is loaded, and
// the library's request fields named as `run`'s flags in its messages.
import { BACKENDS, REQUEST_LIMITS, STRATEGIES, type BackendName, type GenerateOptions } from "@apb/runtime";
import { UsageError } from "../errors.js";
import { parseChoice, parseNumber, parseTokens, parseWhole } from "../parse.js";
import type { Words } from "../words.js";

export interface RunFlags {
  model: string;
  promptFile: string;
  query: string;
  strategy: string;
  hosts: string;
  anchor?: string;
  passing?: string;
  balanced?: boolean;
  backend: string;
  maxTokens: string;
  temperature: string;
  topP: string;
  seed: string;
  retainingHeads?: string;
  json?: boolean;
  processes?: boolean;
  coordinator?: string;
  token?: string;
  logitsOut?: string;
  groupTimeoutMs: string;
  ignoreEos?: boolean;
  allowLongPrompt?: boolean;
  /** commander's --no-chat-template: false when given. */
  chatTemplate: boolean;
}

/** Where the hosts are: emulated in this process, processes started here, or a running group. */
export type Hosts = { kind: "emulated" } | { kind: "processes"; groupTimeoutMs: number } | { kind: "coordinator"; url: string; token: string; groupTimeoutMs: number };

export interface RunSettings {
  model: string;
  /** A file, or "-" for stdin. */
  promptFile: string;
  backend: BackendName;
  hosts: Hosts;
  retainingHeads?: string;
  logitsOut?: string;
  json: boolean;
  /** The request without its document (read after every flag is checked). */
  request: Omit<GenerateOptions, "document">;
}

/** The library's request fields as `run` names them. */
export const RUN_WORDS: Words = {
  document: "--prompt-file",
  query: "--query",
  strategy: "--strategy",
  hosts: "--hosts",
  anchorTokens: "--anchor",
  passingTokens: "--passing",
  balanced: "--balanced",
  scorer: "--retaining-heads",
  maxTokens: "--max-tokens",
  temperature: "--temperature",
  topP: "--top-p",
  seed: "--seed",
  stopTokenIds: "--ignore-eos",
  "allowLongPrompt: true": "--allow-long-prompt",
  allowLongPrompt: "--allow-long-prompt",
  chatTemplate: "--no-chat-template",
  // Counted from the prompt, not set by a flag:
  contextTokens: "the prompt's tokens",
  queryTokens: "the query's tokens",
  prefixTokens: "the prompt's prefix tokens",
};

function hostsOf(o: RunFlags): Hosts {
  if (o.processes && o.coordinator) throw new UsageError("--processes starts its own hosts; --coordinator uses a running group: give one of them");
  const groupTimeoutMs = parseWhole("--group-timeout-ms", o.groupTimeoutMs, { min: 1 });
  if (o.retainingHeads && (o.processes || o.coordinator)) {
    throw new UsageError("--retaining-heads runs on emulated hosts only for now; drop it, or drop --processes/--coordinator");
  }
  if (o.processes) return { kind: "processes", groupTimeoutMs };
  if (o.coordinator === undefined) return { kind: "emulated" };
  if (!/^wss?:\/\//.test(o.coordinator)) throw new UsageError(`--coordinator must be a ws:// or wss:// address, got '${o.coordinator}'`);
  const token = o.token ?? process.env.APB_TOKEN;
  if (!token) throw new UsageError("--token is required with --coordinator (or set APB_TOKEN)");
  return { kind: "coordinator", url: o.coordinator, token, groupTimeoutMs };
}

export function runSettings(o: RunFlags): RunSettings {
  if (o.query.trim() === "") throw new UsageError("--query must not be empty: ask a question about the document");
  const request: Omit<GenerateOptions, "document"> = {
    query: o.query,
    strategy: parseChoice("--strategy", o.strategy, STRATEGIES),
    hosts: parseWhole("--hosts", o.hosts, { min: 1, max: REQUEST_LIMITS.maxHosts }),
    ...(o.anchor !== undefined ? { anchorTokens: parseTokens("--anchor", o.anchor) } : {}),
    ...(o.passing !== undefined ? { passingTokens: parseTokens("--passing", o.passing) } : {}),
    ...(o.balanced !== undefined ? { balanced: o.balanced } : {}),
    ...(o.retainingHeads ? { scorer: "retaining-heads" as const } : {}),
    maxTokens: parseWhole("--max-tokens", o.maxTokens, { max: REQUEST_LIMITS.maxNewTokens }),
    temperature: parseNumber("--temperature", o.temperature, { min: 0, max: REQUEST_LIMITS.maxTemperature }),
    topP: parseNumber("--top-p", o.topP, { min: 0, max: 1, above: true }),
    seed: parseWhole("--seed", o.seed, { max: REQUEST_LIMITS.maxSeed }),
    ...(o.ignoreEos ? { stopTokenIds: [] } : {}),
    ...(o.allowLongPrompt ? { allowLongPrompt: true } : {}),
    ...(o.chatTemplate === false ? { chatTemplate: false } : {}),
  };
  return {
    model: o.model,
    promptFile: o.promptFile,
    backend: parseChoice("--backend", o.backend, BACKENDS),
    hosts: hostsOf(o),
    ...(o.retainingHeads ? { retainingHeads: o.retainingHeads } : {}),
    ...(o.logitsOut ? { logitsOut: o.logitsOut } : {}),
    json: o.json === true,
    request,
  };
}
