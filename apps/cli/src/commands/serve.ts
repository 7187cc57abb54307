// `apb serve`: an OpenAI-compatible HTTP server over a group of hosts. By default it starts
// --hosts local workers (one per GPU with --backend cuda) and restarts one that dies; with
// `--workers remote` it is a coordinator that waits for --hosts `apb worker`s. The server
// listens at once: /health says ready when the group has formed. SIGTERM (or Ctrl-C) drains:
// running and queued requests finish (up to --drain-timeout-ms), then everything stops.
import { existsSync } from "node:fs";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Command } from "commander";
import { Coordinator } from "@apb/control-plane";
import { BACKENDS, modelFingerprint, namedModel, openModelDir, REQUEST_LIMITS, resolveModel, STRATEGIES } from "@apb/runtime";
import { ApbServer, defaultLogger } from "@apb/server";
import { UsageError } from "../errors.js";
import { startLocalGroup, type LocalGroup } from "../hosts/launch.js";
import { parseChoice, parseWhole } from "../parse.js";
import { parseListen } from "./coordinator.js";

interface Flags {
  model: string;
  hosts: string;
  backend: string;
  host: string;
  port: string;
  apiKey?: string;
  modelName?: string;
  workers: string;
  listen: string;
  token?: string;
  strategy: string;
  maxQueue: string;
  maxBodyBytes: string;
  groupWaitMs: string;
  drainTimeoutMs: string;
  defaultMaxTokens: string;
  formTimeoutMs: string;
}

/** The id clients send as `model`: a named model's name, else the file or directory's name. */
function modelIdOf(arg: string): string {
  if (namedModel(arg)) return arg.toLowerCase();
  return basename(arg.replace(/[\\/]+$/, "")).replace(/\.gguf$/i, "");
}

export function registerServe(program: Command): void {
  program
    .command("serve")
    .description("Serve a model over an OpenAI-compatible HTTP API (chat and completions, streaming), running each request on a group of hosts")
    .requiredOption("--model <path|name>", "a Hugging Face model directory, a GGUF file, or a named model (see apb models)")
    .requiredOption("--hosts <n>", "hosts in the group")
    .option("--backend <name>", BACKENDS.join("|"), "cpu")
    .option("--host <address>", "the interface the HTTP API listens on", "127.0.0.1")
    .option("--port <n>", "the HTTP port (0: any free one)", "8000")
    .option("--api-key <key>", "require `Authorization: Bearer KEY` on /v1/* (default $APB_API_KEY; none: open)")
    .option("--model-name <id>", "the model id clients send (default: the model's name)")
    .option("--workers <where>", "local: start the hosts here, one per GPU with cuda; remote: wait for `apb worker`s", "local")
    .option("--listen <host:port>", "with --workers remote: where the control plane listens for workers", "0.0.0.0:29500")
    .option("--token <token>", "the control plane's token: remote workers present it, and the page's live view watches the group with it (default $APB_TOKEN; local workers: random unless given)")
    .option("--strategy <name>", `the strategy when a request does not choose one: ${STRATEGIES.join("|")}`, "apb")
    .option("--max-queue <n>", "requests that may wait behind the running one; more get 429", "64")
    .option("--max-body-bytes <n>", "the largest request body", String(16 * 1024 * 1024))
    .option("--group-wait-ms <ms>", "how long a request waits for the group to form before 503", "30000")
    .option("--drain-timeout-ms <ms>", "on SIGTERM, how long requests may finish before they are cancelled", "30000")
    .option("--default-max-tokens <n>", "max_tokens when a request gives none (capped by the model's positions)", "1024")
    .option("--form-timeout-ms <ms>", "with local workers: how long they may take to load the model and form the group", "600000")
    .action(async (o: Flags) => {
      // Every flag is checked before the model is opened.
      const hosts = parseWhole("--hosts", o.hosts, { min: 1, max: REQUEST_LIMITS.maxHosts });
      const backend = parseChoice("--backend", o.backend, BACKENDS);
      const strategy = parseChoice("--strategy", o.strategy, STRATEGIES);
      if (strategy === "full" && hosts > 1) throw new UsageError(`--strategy full runs on one host: serve it with --hosts 1, or choose another strategy for ${hosts} hosts`);
      if (o.workers !== "local" && o.workers !== "remote") throw new UsageError(`--workers must be local or remote, got '${o.workers}'`);
      const port = parseWhole("--port", o.port, { min: 0, max: 65_535 });
      const apiKey = o.apiKey ?? process.env.APB_API_KEY ?? null;
      if (apiKey !== null && apiKey.length < 8) throw new UsageError("--api-key must be at least 8 characters");
      const listen = o.workers === "remote" ? parseListen(o.listen) : null;
      const token = o.token ?? process.env.APB_TOKEN;
      if (listen && !token) throw new UsageError("--token is required with --workers remote (or set APB_TOKEN): workers must present it");
      const settings = {
        maxQueue: parseWhole("--max-queue", o.maxQueue, { min: 0 }),
        maxBodyBytes: parseWhole("--max-body-bytes", o.maxBodyBytes, { min: 1024 }),
        groupWaitMs: parseWhole("--group-wait-ms", o.groupWaitMs),
        drainTimeoutMs: parseWhole("--drain-timeout-ms", o.drainTimeoutMs),
        defaultMaxTokens: parseWhole("--default-max-tokens", o.defaultMaxTokens, { min: 1 }),
      };
      const formTimeoutMs = parseWhole("--form-timeout-ms", o.formTimeoutMs, { min: 1 });

      const log = defaultLogger();
      const dir = await openModelDir(await resolveModel(o.model, { onStatus: (m) => log.info(m) }));
      const fingerprint = modelFingerprint(dir);
      let local: LocalGroup | null = null;
      let coordinator: Coordinator;
      if (listen) {
        coordinator = await Coordinator.start({ ...listen, hosts, token: token!, model: { path: dir.path, fingerprint }, maxQueuedJobs: settings.maxQueue + 1, logger: (line) => log.info({ from: "coordinator" }, line) });
        log.info(`control plane listening on ${coordinator.url}; waiting for ${hosts} apb worker${hosts > 1 ? "s" : ""}`);
      } else {
        // The server's queue decides who waits: the coordinator must hold as many (its default is 1024).
        local = await startLocalGroup({ modelPath: dir.path, fingerprint, hosts, backend, formTimeoutMs, maxQueuedJobs: settings.maxQueue + 1, ...(token ? { token } : {}), restart: { log: (line) => log.warn(line) } });
        coordinator = local.coordinator;
        // The page's live view watches a group through its control plane, with its token.
        log.info(token ? `control plane on ${coordinator.url} (watch it from the page's live view with --token)` : `control plane on ${coordinator.url} (give --token or APB_TOKEN to watch it from the page's live view)`);
      }
      const server = await ApbServer.start({
        group: coordinator,
        model: { dir, id: o.modelName ?? modelIdOf(o.model) },
        host: o.host,
        port,
        apiKey,
        strategy,
        logger: log,
        webRoot: findWebRoot(),
        ...settings,
      });
      log.info({ url: server.url, model: o.modelName ?? modelIdOf(o.model), hosts, backend, workers: o.workers }, `apb serve listening on ${server.url}`);

      // Stops on SIGTERM or Ctrl-C (drained), or when the group cannot form (an error).
      const failure = new Promise<never>((_, reject) => {
        local?.ready().then(
          () => log.info(`the group of ${hosts} formed; ready`),
          (e: unknown) => reject(e),
        );
      });
      const signalled = new Promise<string>((resolve) => {
        process.once("SIGTERM", () => resolve("SIGTERM"));
        process.once("SIGINT", () => resolve("SIGINT"));
      });
      try {
        const signal = await Promise.race([signalled, failure]);
        log.info(`${signal}: draining (up to ${settings.drainTimeoutMs} ms), then stopping`);
      } finally {
        await server.close();
        if (local) await local.stop();
        else await coordinator.close();
        log.info("stopped");
      }
    });
}

/**
 * The built web page served at /: a bundle's web/ beside lib/, or apps/web/dist in the
 * repository (from apps/cli/dist/commands or apps/cli/src/commands); null when neither is built.
 */
export function findWebRoot(): string | null {
  const candidates = [new URL("../web", import.meta.url), new URL("../../../web/dist", import.meta.url)].map((url) => fileURLToPath(url));
  return candidates.find((dir) => existsSync(join(dir, "index.html"))) ?? null;
}
