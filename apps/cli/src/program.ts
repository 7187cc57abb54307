import { Command, CommanderError } from "commander";
import { registerCalibrate } from "./commands/calibrate.js";
import { registerCoordinator } from "./commands/coordinator.js";
import { registerDemo } from "./commands/demo.js";
import { registerDoctor } from "./commands/doctor.js";
import { registerEval } from "./commands/eval.js";
import { registerMakeTinyModel } from "./commands/make-tiny-model.js";
import { registerModels } from "./commands/models.js";
import { registerPlan } from "./commands/plan.js";
import { registerRun } from "./commands/run.js";
import { registerServe } from "./commands/serve.js";
import { registerWorker } from "./commands/worker.js";
import { UsageError } from "./errors.js";
import { jsonRequested, ReaderGone, report } from "./report.js";

/** The program; with `quiet`, commander's own errors are left to main() (to print as JSON). */
export function buildProgram(quiet = false): Command {
  const program = new Command("apb")
    .description("Fast long-context prefill across GPU hosts with APB (anchor and passing blocks)")
    .version("0.1.0")
    .showHelpAfterError("(run apb --help for usage)")
    .exitOverride()
    .configureOutput(
      quiet
        ? { outputError: () => {}, writeErr: () => {} }
        : { outputError: (text, write) => write(`apb: ${text.replace(/^error: /, "")}`) },
    );
  registerPlan(program);
  registerRun(program);
  registerEval(program);
  registerServe(program);
  registerWorker(program);
  registerCoordinator(program);
  registerMakeTinyModel(program);
  registerModels(program);
  registerDoctor(program);
  registerCalibrate(program);
  registerDemo(program);
  return program;
}

/** Runs the CLI and returns the exit code; never throws. Errors are one line on stderr, or
 * with --json one JSON object on stderr ({"error": {code, message, path}}). */
export async function main(argv: string[]): Promise<number> {
  const json = jsonRequested(buildProgram(), argv);
  try {
    await buildProgram(json).parseAsync(argv);
    return 0;
  } catch (caught) {
    let error = caught;
    if (error instanceof CommanderError) {
      // --help and --version exit 0; a bad command line was printed by commander unless JSON is wanted.
      if (error.exitCode === 0) return 0;
      if (!json) return 2;
      error = new UsageError(error.message.replace(/^error: /, ""));
    }
    // Like other tools writing into `| head`: no message, success (the reader got what it wanted).
    if (error instanceof ReaderGone) return 0;
    const r = report(error);
    process.stderr.write(json ? `${JSON.stringify({ error: r.error })}\n` : `${r.line}\n`);
    return r.exitCode;
  }
}
