// `apb models`: the named models (`--model smollm2-135m-instruct`), which are cached and where;
// `apb models fetch NAME` fetches one ahead of time (for machines that run offline later).
import type { Command } from "commander";
import { fetchNamedModel, listCachedModels, modelsCacheDir, NAMED_MODELS } from "@apb/runtime";
import { formatTable } from "../render/table.js";

export function registerModels(program: Command): void {
  const models = program
    .command("models")
    .description("List the named models and the ones cached on this machine ($APB_MODELS moves the cache)")
    .option("--json", "print JSON only")
    .action(async (o: { json?: boolean }) => {
      const cacheDir = modelsCacheDir();
      const cached = new Map((await listCachedModels(cacheDir)).map((m) => [m.name, m]));
      const entries = NAMED_MODELS.map((m) => ({
        name: m.name,
        description: m.description,
        license: m.license,
        source: `PyPI ${m.pypiPackage}==${m.pypiVersion}`,
        cached: cached.has(m.name),
        file: cached.get(m.name)?.file ?? null,
        bytes: m.fileBytes,
      }));
      if (o.json) {
        process.stdout.write(`${JSON.stringify({ cacheDir, models: entries }, null, 2)}\n`);
        return;
      }
      const rows = entries.map((e) => [e.name, (e.bytes / 1e6).toFixed(0), e.cached ? e.file! : "not cached (fetched on first use)", e.source, e.description]);
      process.stdout.write(`cache: ${cacheDir}\n\n${formatTable(["name", "MB", "file", "source", "model"], rows)}\n`);
    });
  models
    .command("fetch <name>")
    .description("Fetch a named model into the cache now")
    .action(async (name: string) => {
      const file = await fetchNamedModel(name, { onStatus: (m) => process.stderr.write(`apb: ${m}\n`) });
      process.stdout.write(`${file}\n`);
    });
}
