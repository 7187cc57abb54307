// `apb coordinator`: the control plane for hosts on several machines. It admits `apb
// worker`s that know the token, forms the group when --hosts of them have loaded the model,
// and runs the jobs `apb run --coordinator` sends, one at a time, until stopped.
import type { Command } from "commander";
import { Coordinator } from "@apb/control-plane";
import { modelFingerprint, openModelDir, REQUEST_LIMITS, resolveModel } from "@apb/runtime";
import { UsageError } from "../errors.js";
import { parseWhole } from "../parse.js";

interface Options {
  model: string;
  hosts: string;
  listen: string;
  token?: string;
  heartbeatMs: string;
}

export function parseListen(text: string): { host: string; port: number } {
  const m = /^(.*):(\d+)$/.exec(text);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !m[1] || port > 65535) throw new UsageError(`--listen must be HOST:PORT such as 0.0.0.0:29500, got '${text}'`);
  return { host: m[1].replace(/^\[(.*)\]$/, "$1"), port };
}

export function registerCoordinator(program: Command): void {
  program
    .command("coordinator")
    .description("Run the control plane for hosts on several machines (apb worker joins it, apb run --coordinator sends it jobs)")
    .requiredOption("--model <path|name>", "the model every host loads: a directory, GGUF file or named model (the same path on every machine, or each worker's --model)")
    .requiredOption("--hosts <n>", "hosts in the group")
    .option("--listen <host:port>", "where to listen", "0.0.0.0:29500")
    .option("--token <token>", "admission token for hosts and callers (default $APB_TOKEN)")
    .option("--heartbeat-ms <ms>", "heartbeat interval; a host is dead after 3 missed", "1000")
    .action(async (o: Options) => {
      // Every flag is checked before the model is opened.
      const hosts = parseWhole("--hosts", o.hosts, { min: 1, max: REQUEST_LIMITS.maxHosts });
      const { host, port } = parseListen(o.listen);
      const token = o.token ?? process.env.APB_TOKEN;
      if (!token) throw new UsageError("--token is required (or set APB_TOKEN): hosts and callers must present it");
      const heartbeatMs = parseWhole("--heartbeat-ms", o.heartbeatMs, { min: 1 });
      const dir = await openModelDir(await resolveModel(o.model, { onStatus: (m) => process.stderr.write(`apb coordinator: ${m}\n`) }));
      const log = (line: string) => process.stderr.write(`apb coordinator: ${line}\n`);
      const coordinator = await Coordinator.start({
        host,
        port,
        hosts,
        token,
        model: { path: dir.path, fingerprint: modelFingerprint(dir) },
        heartbeatMs,
        logger: log,
      });
      log(`listening on ${coordinator.url}; waiting for ${hosts} host${hosts > 1 ? "s" : ""} (model ${dir.path})`);
      await new Promise<void>((resolve) => {
        const stop = (signal: string) => {
          log(`${signal}: closing`);
          void coordinator.close().then(resolve);
        };
        process.once("SIGTERM", () => stop("SIGTERM"));
        process.once("SIGINT", () => stop("SIGINT"));
      });
    });
}
