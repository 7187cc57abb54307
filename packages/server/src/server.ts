// The HTTP server: fastify with apb's routes, the API key, the error envelope, one log line
// per request, and a drain on close. It runs jobs on a group it is given and knows nothing of
// how the group was started (local workers or remote ones).
import type { AddressInfo } from "node:net";
import Fastify, { LogController, type FastifyInstance } from "fastify";
import { pino, type Logger } from "pino";
import { Admission } from "./admission.js";
import { checkApiKey } from "./auth.js";
import { Completions } from "./completion.js";
import { asErrorData, errorBody, ServerError } from "./errors.js";
import { ServerMetrics } from "./metrics.js";
import type { ServerOptions } from "./options.js";
import { registerCompletionRoutes } from "./routes/completions.js";
import { registerInfoRoutes } from "./routes/info.js";
import { noteOutcome, outcomeOfStatus, registerRequestLog } from "./request-log.js";
import { registerWebPage } from "./static.js";

const ROUTES = "GET / (the web page), POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health, GET /metrics";

function invalid(path: string, message: string): never {
  throw new ServerError({ code: "INVALID_OPTIONS", path, message: `ApbServer.start: ${path} ${message}` });
}

function whole(path: string, value: number | undefined, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < min || value > max) invalid(path, `must be an integer in [${min}, ${max}], found ${String(value)}`);
  return value;
}

export function defaultLogger(): Logger {
  return pino({ level: process.env.LOG_LEVEL ?? "info", timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ fd: 2, sync: true }));
}

export class ApbServer {
  private draining = false;
  private closing: Promise<void> | null = null;
  /** Every request's job, so a drain that runs out of time can cancel what is left. */
  private readonly jobs = new Set<AbortController>();
  /** Requests whose response is not done yet. */
  private requests = 0;

  private constructor(
    readonly app: FastifyInstance,
    readonly metrics: ServerMetrics,
    private readonly drainTimeoutMs: number,
  ) {}

  static async start(o: ServerOptions): Promise<ApbServer> {
    const port = whole("port", o.port, 8000, 0, 65_535);
    const maxQueue = whole("maxQueue", o.maxQueue, 64, 0);
    const maxBodyBytes = whole("maxBodyBytes", o.maxBodyBytes, 16 * 1024 * 1024, 1024);
    const groupWaitMs = whole("groupWaitMs", o.groupWaitMs, 30_000, 0);
    const drainTimeoutMs = whole("drainTimeoutMs", o.drainTimeoutMs, 30_000, 0);
    const defaultMaxTokens = whole("defaultMaxTokens", o.defaultMaxTokens, 1024, 1);
    if (o.apiKey !== undefined && o.apiKey !== null && o.apiKey.length < 8) invalid("apiKey", "must be at least 8 characters");
    const logger = o.logger ?? defaultLogger();
    const app = Fastify({
      loggerInstance: logger,
      bodyLimit: maxBodyBytes,
      // One line per request is ours (request-log.ts); fastify's own are off.
      logController: new LogController({ disableRequestLogging: true }),
      // A prefill of 1M tokens takes minutes: no timeout of node's cuts a request short.
      requestTimeout: 0,
      // Refusals while draining are ours (SHUTDOWN, in the error envelope).
      return503OnClosing: false,
    }) as unknown as FastifyInstance;
    // Fastify parses text/plain as a string by default; the API takes JSON only (415 otherwise).
    app.removeContentTypeParser("text/plain");
    const metrics = new ServerMetrics();
    const server = new ApbServer(app, metrics, drainTimeoutMs);
    const admission = new Admission(maxQueue);
    const completions = new Completions(o.model.dir, o.group, admission, metrics, { strategy: o.strategy ?? "apb", defaultMaxTokens, groupWaitMs });

    registerRequestLog(app, metrics);
    app.addHook("onRequest", async (_request, reply) => {
      server.requests += 1;
      reply.raw.once("close", () => {
        server.requests -= 1;
        if (server.draining) server.closeSpareConnections();
      });
    });
    app.addHook("onRequest", async (request) => {
      // The route, not the raw URL: the router decodes percent-escapes ("/%761/models" is GET /v1/models).
      if (!(request.routeOptions.url ?? request.url).startsWith("/v1/")) return;
      if (server.draining) throw new ServerError({ code: "SHUTDOWN", message: "the server is shutting down and takes no new requests" });
      if (o.apiKey) checkApiKey(request.headers.authorization, o.apiKey);
    });
    app.setErrorHandler((error, request, reply) => {
      const { data, status, internal } = asErrorData(error);
      if (internal) request.log.error({ err: error }, internal);
      noteOutcome(request, data.code, outcomeOfStatus(status));
      const retryAfterS = (error as { retryAfterS?: number }).retryAfterS;
      if (retryAfterS !== undefined) reply.header("retry-after", String(retryAfterS));
      else if (status === 503) reply.header("retry-after", "5");
      if (status === 401) reply.header("www-authenticate", 'Bearer realm="apb"');
      return reply.code(status).send(errorBody(data));
    });
    app.setNotFoundHandler((request, reply) =>
      reply.code(404).send(errorBody({ code: "UNKNOWN_ROUTE", path: "", message: `no endpoint ${request.method} ${request.url.split("?")[0]}; apb serves ${ROUTES}` })),
    );
    registerCompletionRoutes(app, {
      completions,
      modelId: o.model.id,
      track: (job) => {
        server.jobs.add(job);
        return () => server.jobs.delete(job);
      },
    });
    registerInfoRoutes(app, { modelId: o.model.id, startedAtS: Math.floor(Date.now() / 1000), group: o.group, admission, metrics, draining: () => server.draining });
    await registerWebPage(app, o.webRoot ?? null);
    await app.listen({ host: o.host ?? "127.0.0.1", port });
    return server;
  }

  /** "http://HOST:PORT" */
  get url(): string {
    const a = this.app.server.address() as AddressInfo;
    const host = a.family === "IPv6" ? `[${a.address}]` : a.address;
    return `http://${host}:${a.port}`;
  }

  /**
   * Drains: stops taking requests (new ones get 503 SHUTDOWN), lets those running or queued
   * finish for up to drainTimeoutMs, cancels what is left on every host, then closes.
   */
  close(): Promise<void> {
    if (!this.closing) {
      this.draining = true;
      this.closing = (async () => {
        const cut = setTimeout(() => {
          for (const job of this.jobs) job.abort(new ServerError({ code: "SHUTDOWN", message: "the server shut down before this request finished" }));
        }, this.drainTimeoutMs);
        try {
          const closed = this.app.close();
          this.closeSpareConnections();
          await closed;
        } finally {
          clearTimeout(cut);
        }
      })();
    }
    return this.closing;
  }

  /**
   * Once no request is in flight, closes the connections left: a keep-alive socket that
   * carries no request (clients open spares) would otherwise hold close() until the client
   * drops it, as node's closeIdleConnections leaves sockets that never carried a request.
   */
  private closeSpareConnections(): void {
    if (this.requests === 0) this.app.server.closeAllConnections();
  }
}
