#!/usr/bin/env node
import { stdoutGone } from "./interrupt.js";
import { main } from "./program.js";

// The answer streams to stdout; a reader that stops reading (apb run ... | head -c 100) stops
// the command quietly, as other command-line tools do, instead of with a stack trace.
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code !== "EPIPE") throw error;
  stdoutGone();
});

process.exitCode = await main(process.argv);
