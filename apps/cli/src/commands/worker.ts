// `apb worker`: one host as a process. It joins a coordinator, loads the model the
// coordinator names, joins its group's data plane and runs its part of every job, until
// stopped. torchrun's and Slurm's variables give its rank and the coordinator's address.
import { hostname } from "node:os";
import type { Command } from "commander";
import { HostAgent } from "@apb/control-plane";
import { BACKENDS, type BackendName } from "@apb/runtime";
import { UsageError } from "../errors.js";
import { RuntimeExecutor } from "../hosts/executor.js";
import { launcherEnv } from "../hosts/env.js";
import { parseWhole } from "../parse.js";

interface Options {
  coordinator?: string;
  token?: string;
  backend: string;
  gpu?: string;
  rank?: string;
  model?: string;
  dataAddress?: string;
  exitWithCoordinator?: boolean;
}

/** The address other hosts reach this one at: loopback when the coordinator is local;
 * otherwise the hostname, which cluster hosts (Slurm nodes, Kubernetes pods) resolve to an
 * address the others reach. --data-address overrides it. */
function defaultAdvertise(coordinatorUrl: string): string {
  const host = new URL(coordinatorUrl).hostname;
  return host === "127.0.0.1" || host === "localhost" || host === "[::1]" ? "127.0.0.1" : hostname();
}

export function registerWorker(program: Command): void {
  program
    .command("worker")
    .description("Run one host as a process: join a coordinator, load its model, run its jobs")
    .option("--coordinator <url>", "the coordinator, ws://HOST:PORT (default ws://$MASTER_ADDR:$MASTER_PORT)")
    .option("--token <token>", "admission token (default $APB_TOKEN)")
    .option("--backend <name>", BACKENDS.join("|"), "cpu")
    .option("--gpu <index>", "the GPU this host uses with --backend cuda (default $LOCAL_RANK, $SLURM_LOCALID or 0)")
    .option("--rank <n>", "the rank to ask for (default $RANK or $SLURM_PROCID)")
    .option("--model <path|name>", "load this model instead of the coordinator's path (the same model elsewhere on disk, or a named model)")
    .option("--data-address <host>", "the address other CPU hosts reach this host's data plane at")
    .option("--exit-with-coordinator", "exit when the coordinator goes away instead of reconnecting")
    .action(async (o: Options) => {
      if (!(BACKENDS as readonly string[]).includes(o.backend)) throw new UsageError(`--backend must be one of ${BACKENDS.join(", ")}; got '${o.backend}'`);
      const env = launcherEnv();
      const url = o.coordinator ?? env.coordinator;
      if (!url) throw new UsageError("--coordinator is required (or set MASTER_ADDR and MASTER_PORT), e.g. --coordinator ws://node-a:29500");
      if (!/^wss?:\/\//.test(url)) throw new UsageError(`--coordinator must be a ws:// or wss:// address, got '${url}'`);
      const token = o.token ?? process.env.APB_TOKEN;
      if (!token) throw new UsageError("--token is required (or set APB_TOKEN): the coordinator admits only hosts that know it");
      const rank = o.rank !== undefined ? parseWhole("--rank", o.rank) : env.rank;
      const gpu = o.gpu !== undefined ? parseWhole("--gpu", o.gpu) : (env.localRank ?? 0);
      const tag = `apb worker${rank !== undefined ? ` ${rank}` : ""} (pid ${process.pid})`;
      const log = (line: string) => process.stderr.write(`${tag}: ${line}\n`);
      const executor = new RuntimeExecutor({
        backend: o.backend as BackendName,
        gpu,
        ...(o.model ? { modelPath: o.model } : {}),
        dataListen: `${o.dataAddress ?? "0.0.0.0"}:0`,
        dataAdvertise: o.dataAddress ?? defaultAdvertise(url),
        joinTimeoutMs: 120_000,
        ...(env.worldSize !== undefined ? { launcherWorldSize: env.worldSize } : {}),
        log,
      });
      await new Promise<void>((resolve, reject) => {
        const agent = HostAgent.start({
          url,
          token,
          executor,
          ...(rank !== undefined ? { rankHint: rank } : {}),
          logger: log,
          onFatal: (error: { code: string; message: string }) => {
            void agent.stop();
            reject(new UsageError(`the coordinator refused this host: ${error.message} [${error.code}]`));
          },
          ...(o.exitWithCoordinator
            ? {
                onDisconnect: () => {
                  log("the coordinator went away; exiting");
                  void agent.stop().then(resolve);
                },
              }
            : {}),
        });
        const stop = (signal: string) => {
          log(`${signal}: leaving`);
          void agent.stop().then(resolve);
        };
        process.once("SIGTERM", () => stop("SIGTERM"));
        process.once("SIGINT", () => stop("SIGINT"));
      });
    });
}
