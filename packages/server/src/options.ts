import type { ModelDir, Strategy } from "@apb/runtime";
import type { Logger } from "pino";
import type { JobGroup } from "./group.js";

export interface ServerOptions {
  /** What runs the jobs: a control-plane Coordinator whose group loaded `model.dir`. */
  group: JobGroup;
  model: {
    dir: ModelDir;
    /** The id clients send as `model` and GET /v1/models lists. */
    id: string;
  };
  /** Interface to listen on (default 127.0.0.1). */
  host?: string;
  /** 0 takes any free port; `url` says which (default 8000). */
  port?: number;
  /** When set, /v1/* needs `Authorization: Bearer <apiKey>` (/health and /metrics stay open, for probes and scrapers). */
  apiKey?: string | null;
  /** Requests that may wait behind the running one; more get 429 (default 64). */
  maxQueue?: number;
  /** Largest request body (default 16 MiB: about 4M tokens of English). */
  maxBodyBytes?: number;
  /** How long a request waits for the group to form before 503 (default 30 s). */
  groupWaitMs?: number;
  /** On close, how long running and queued requests may finish before they are cancelled (default 30 s). */
  drainTimeoutMs?: number;
  /** The strategy when a request's `apb.strategy` does not say (default apb). */
  strategy?: Strategy;
  /** max_tokens when a request gives none, capped by the model's positions (default 1024). */
  defaultMaxTokens?: number;
  /** The built web page (apps/web/dist), served at / with its assets and no API key; null or absent: GET / says how to build it. */
  webRoot?: string | null;
  /** Where the structured logs go (default: JSON lines on stderr at info level). */
  logger?: Logger;
}
