// One log line and one count per API request, when its connection is done with it (streamed
// responses included): method, route, status, duration, outcome and error code.
import { performance } from "node:perf_hooks";
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { Outcome as MetricOutcome, ServerMetrics } from "./metrics.js";

interface Noted {
  code: string | null;
  outcome: MetricOutcome | null;
}

const noted = new WeakMap<FastifyRequest, Noted>();

/** Records why a request ended where its status cannot say (an error inside a stream). */
export function noteOutcome(request: FastifyRequest, code: string, outcome: MetricOutcome): void {
  noted.set(request, { code, outcome });
}

/** A response's outcome by its status (499: the client went away). */
export function outcomeOfStatus(status: number): MetricOutcome {
  if (status === 499) return "cancelled";
  if (status < 400) return "ok";
  if (status === 401) return "unauthorized";
  if (status === 429) return "busy";
  if (status === 503) return "unavailable";
  return status >= 500 ? "failed" : "client_error";
}

function outcomeOf(status: number, clientGone: boolean): MetricOutcome {
  return clientGone ? "cancelled" : outcomeOfStatus(status);
}

export function registerRequestLog(app: FastifyInstance, metrics: ServerMetrics): void {
  app.addHook("onRequest", async (request, reply) => {
    const start = performance.now();
    reply.raw.once("close", () => {
      const route = request.routeOptions.url ?? "unknown";
      const gone = !reply.raw.writableFinished;
      const n = noted.get(request);
      const outcome = n?.outcome ?? outcomeOf(reply.raw.statusCode, gone);
      if (route.startsWith("/v1/")) metrics.requests.inc({ route, outcome });
      const line = { method: request.method, url: request.url, status: reply.raw.statusCode, ms: Math.round(performance.now() - start), outcome, code: n?.code ?? null };
      if (outcome === "failed") request.log.error(line, "request failed");
      else request.log.info(line, "request done");
    });
  });
}
