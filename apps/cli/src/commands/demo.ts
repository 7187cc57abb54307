// `apb demo`: the planner's view of a 128K prompt on 8 hosts, then a real run on a tiny
// random model: full attention and APB, Star and Ring prefill over emulated hosts, showing
// where their answers agree with full attention's.
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Command } from "commander";
import { defaultPlanner } from "@apb/planner";
import { agreeingPrefix, loadModel, logitAgreement, writeTinyModel, type Generation, type Model, type Strategy } from "@apb/runtime";
import { parseWhole } from "../parse.js";
import { ms } from "../render/format.js";
import { formatTable } from "../render/table.js";
import { renderComparison } from "./plan.js";

interface Options {
  dir: string;
  words: string;
  hosts: string;
}

// The vocabulary is the tiny tokenizer's own size (bytes, merges, specials), so every token
// the random model picks decodes to text.
const TINY = { architecture: "llama", dtype: "float32", layers: 4, hidden: 128, heads: 8, kvHeads: 2, intermediate: 256, vocab: 271, seed: 7, chatTemplate: true } as const;

function documentOf(words: number): string {
  const sentences = [
    "The river ran past the old mill, where the miller kept his ledgers.",
    "Every winter the village stored grain in the long barn by the road.",
    "Travellers spoke of a lighthouse whose keeper wrote letters to the king.",
    "In spring the orchards flowered and the bees returned to the hills.",
  ];
  const out: string[] = [];
  let count = 0;
  for (let i = 0; count < words; i++) {
    const s = i === 40 ? "Note for later: the password to the archive is amber falcon." : sentences[i % sentences.length]!;
    out.push(s);
    count += s.split(" ").length;
  }
  return out.join(" ");
}

async function run(model: Model, strategy: Strategy, hosts: number, document: string, query: string): Promise<Generation> {
  return model.generate({ document, query, strategy, hosts, maxTokens: 12 });
}

export function registerDemo(program: Command): void {
  program
    .command("demo")
    .description("Plan a 128K prompt on 8 hosts, then run full, APB, Star and Ring prefill on a tiny model")
    .option("--dir <dir>", "where the tiny model is written", join(tmpdir(), `apb-demo-model-${TINY.layers}x${TINY.hidden}-v${TINY.vocab}`))
    .option("--words <n>", "document length in words", "2500")
    .option("--hosts <n>", "emulated hosts", "4")
    .action(async (o: Options) => {
      const planner = await defaultPlanner();
      const comparison = planner.compare({ model: "llama-3.1-8b", contextTokens: 131_072, hosts: 8 });
      process.stdout.write(`== The planner: Llama-3.1-8B, 128K tokens, 8 H100 hosts (predicted) ==\n\n${renderComparison(comparison, "llama-3.1-8b", "h100-ib")}\n\n`);

      if (!existsSync(join(o.dir, "config.json"))) await writeTinyModel(o.dir, TINY);
      const model = await loadModel(o.dir);
      const hosts = parseWhole("--hosts", o.hosts);
      const document = documentOf(parseWhole("--words", o.words));
      const query = "What is the password to the archive?";
      const full = await run(model, "full", 1, document, query);
      const prompt = full.promptTokens;
      process.stdout.write(
        `== The engine (CPU): a tiny random ${TINY.layers}-layer model, ${prompt.prefix + prompt.document} context tokens + ${prompt.query} query tokens ==\n` +
          `(random weights: the answers are noise; what matters is whether each strategy gives full attention's answer)\n\n`,
      );
      const rows: (string | number)[][] = [];
      const answers: string[] = [];
      for (const strategy of ["full", "apb", "star", "ring"] as const) {
        const g = strategy === "full" ? full : await run(model, strategy, hosts, document, query);
        const agreement = logitAgreement(g.firstLogits, full.firstLogits);
        rows.push([
          strategy,
          g.layout.hosts,
          g.layout.anchorTokens,
          g.layout.passingTokens,
          ms(g.timings.prefillMs),
          ((prompt.prefix + prompt.document) / (g.timings.prefillMs / 1000)).toFixed(0),
          agreement.sameTop1 ? "yes" : "no",
          agreement.relativeError.toExponential(1),
          `${agreeingPrefix(g.tokens, full.tokens)}/${full.tokens.length}`,
        ]);
        answers.push(`${strategy.padEnd(5)} ${JSON.stringify(g.text)} (token ids ${g.tokens.join(" ")})`);
      }
      process.stdout.write(
        formatTable(["strategy", "hosts", "l_a", "l_p", "prefill ms", "tokens/s", "same 1st token", "logit rel. err", "tokens = full"], rows) +
          "\n\nprefill ms: the slowest host's own prefill work (hosts are emulated on this machine, one at a time).\n" +
          "Ring is exact (same answer as full up to rounding); APB and Star approximate attention.\n\nanswers:\n" +
          answers.join("\n") +
          "\n",
      );
    });
}
