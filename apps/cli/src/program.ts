import { Command, CommanderError } from "commander";
import { registerCoordinator } from "./commands/coordinator.js";
import { registerDemo } from "./commands/demo.js";
import { registerDoctor } from "./commands/doctor.js";
import { registerEval } from "./commands/eval.js";
import { registerMakeTinyModel } from "./commands/make-tiny-model.js";
import { registerModels } from "./commands/models.js";
import { registerPlan } from "./commands/plan.js";
import { registerRun } from "./commands/run.js";
import { registerWorker } from "./commands/worker.js";
import { describe } from "./errors.js";

export function buildProgram(): Command {
  const program = new Command("apb")
    .description("Fast long-context prefill across GPU hosts with APB (anchor and passing blocks)")
    .version("0.1.0")
    .showHelpAfterError("(run apb --help for usage)")
    .exitOverride()
    .configureOutput({ outputError: (text, write) => write(`apb: ${text.replace(/^error: /, "")}`) });
  registerPlan(program);
  registerRun(program);
  registerEval(program);
  registerWorker(program);
  registerCoordinator(program);
  registerMakeTinyModel(program);
  registerModels(program);
  registerDoctor(program);
  registerDemo(program);
  return program;
}

/** Runs the CLI and returns the exit code; never throws. */
export async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      return error.exitCode === 0 ? 0 : 2;
    }
    const { line, exitCode } = describe(error);
    process.stderr.write(`${line}\n`);
    return exitCode;
  }
}
