// Prometheus metrics, on a registry of this server's own (so several servers can live in one
// process). Times are in seconds, as Prometheus names them; wall time to the first token is
// what the client waited, from the request's arrival (queueing included).
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { GroupHealth } from "./group.js";

/** A request's outcome, one label value each: answered, refused (4xx), or failed (5xx). */
export type Outcome = "ok" | "client_error" | "unauthorized" | "busy" | "cancelled" | "failed" | "unavailable";

// From 50 ms to about 14 min: short CPU prompts to 1M-token prefills.
const SECONDS = [0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 850];

export class ServerMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({ name: "apb_requests_total", help: "HTTP requests to the API, by route and outcome", labelNames: ["route", "outcome"], registers: [this.registry] });
  readonly firstToken = new Histogram({ name: "apb_time_to_first_token_seconds", help: "Wall time from a request's arrival to its first token (queueing, tokenizing, prefill and the query pass)", buckets: SECONDS, registers: [this.registry] });
  readonly prefill = new Histogram({ name: "apb_prefill_seconds", help: "Prefill wall time of the slowest host of a job", buckets: SECONDS, registers: [this.registry] });
  readonly hostPrefill = new Histogram({ name: "apb_host_prefill_seconds", help: "Each host's own prefill work, by rank", labelNames: ["host"], buckets: SECONDS, registers: [this.registry] });
  readonly hostComm = new Histogram({ name: "apb_host_comm_seconds", help: "Each host's time in communication during prefill, by rank", labelNames: ["host"], buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60], registers: [this.registry] });
  readonly decodeRate = new Histogram({ name: "apb_decode_tokens_per_second", help: "Tokens generated per second after the first, per request", buckets: [1, 5, 10, 25, 50, 100, 200, 400, 800, 1600], registers: [this.registry] });
  readonly promptTokens = new Counter({ name: "apb_prompt_tokens_total", help: "Prompt tokens prefilled", registers: [this.registry] });
  readonly generatedTokens = new Counter({ name: "apb_generated_tokens_total", help: "Tokens generated", registers: [this.registry] });
  readonly queueLength = new Gauge({ name: "apb_queue_length", help: "Requests waiting behind the running one", registers: [this.registry] });
  readonly running = new Gauge({ name: "apb_requests_running", help: "Requests whose job is running on the group (0 or 1)", registers: [this.registry] });
  readonly hostsUp = new Gauge({ name: "apb_hosts_up", help: "Hosts connected and ready for their rank", registers: [this.registry] });
  readonly hostsExpected = new Gauge({ name: "apb_hosts_expected", help: "Hosts the group needs", registers: [this.registry] });
  readonly groupReady = new Gauge({ name: "apb_group_ready", help: "1 when the group is formed and can run jobs", registers: [this.registry] });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: "apb_process_" });
  }

  /** Sets the gauges that describe the group and the queue (at each scrape). */
  observeGroup(health: GroupHealth, waiting: number): void {
    this.hostsUp.set(health.up);
    this.hostsExpected.set(health.expected);
    this.groupReady.set(health.ready ? 1 : 0);
    this.running.set(health.runningJob ? 1 : 0);
    this.queueLength.set(waiting);
  }
}
