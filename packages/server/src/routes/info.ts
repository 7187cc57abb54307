// GET /v1/models, GET /health and GET /metrics.
import type { FastifyInstance } from "fastify";
import type { Admission } from "../admission.js";
import { groupHealth, type JobGroup } from "../group.js";
import type { ServerMetrics } from "../metrics.js";

export interface InfoRoutes {
  modelId: string;
  /** When the server started, in seconds since the epoch (the model's `created`). */
  startedAtS: number;
  group: JobGroup;
  admission: Admission;
  metrics: ServerMetrics;
  draining(): boolean;
}

export function registerInfoRoutes(app: FastifyInstance, ctx: InfoRoutes): void {
  app.get("/v1/models", async () => ({
    object: "list",
    data: [{ id: ctx.modelId, object: "model", created: ctx.startedAtS, owned_by: "apb" }],
  }));

  app.get("/v1/models/:id", async (request, reply) => {
    const { id } = request.params as { id: string };
    if (id !== ctx.modelId) {
      return reply.code(404).send({ error: { code: "UNKNOWN_MODEL", message: `model '${id}' is not served here; this server serves '${ctx.modelId}'`, path: "model", type: "not_found_error", param: "model" } });
    }
    return { id, object: "model", created: ctx.startedAtS, owned_by: "apb" };
  });

  // Ready (200) only when the group has formed and the server is not draining; otherwise 503,
  // saying which hosts are missing. Load balancers and Kubernetes probes read the status.
  app.get("/health", async (_request, reply) => {
    const health = groupHealth(ctx.group.status());
    const draining = ctx.draining();
    const status = draining ? "draining" : health.ready ? "ready" : "unready";
    reply.code(status === "ready" ? 200 : 503);
    return {
      status,
      message: draining ? "the server is shutting down" : health.message,
      model: ctx.modelId,
      hosts: { expected: health.expected, up: health.up, missing: health.missingRanks, list: health.hosts },
      queue: { running: health.runningJob ? 1 : 0, waiting: ctx.admission.waiting },
    };
  });

  app.get("/metrics", async (_request, reply) => {
    ctx.metrics.observeGroup(groupHealth(ctx.group.status()), ctx.admission.waiting);
    reply.header("content-type", ctx.metrics.registry.contentType);
    return ctx.metrics.registry.metrics();
  });
}
