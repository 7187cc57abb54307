// Turns errors into the CLI's one-line messages and exit codes: 2 for bad input (the user
// can fix it), 1 for anything else.
import { PlannerError } from "@apb/planner";
import { RuntimeError } from "@apb/runtime";

/** Request fields as the user typed them on the command line. */
const FLAG_OF: Record<string, string> = {
  contextTokens: "--length",
  hosts: "--hosts",
  queryTokens: "--query-length",
  prefixTokens: "--prefix-length",
  strategy: "--strategy",
  anchorTokens: "--anchor",
  passingTokens: "--passing",
  model: "--model",
  hardware: "--hardware",
  maxHosts: "--max-hosts",
};

export class UsageError extends Error {}

export function describe(error: unknown): { line: string; exitCode: number } {
  if (error instanceof PlannerError || error instanceof RuntimeError) {
    let message = error.message;
    const flag = FLAG_OF[error.path];
    if (flag && message.startsWith(error.path)) message = flag + message.slice(error.path.length);
    return { line: `apb: ${message} [${error.code}]`, exitCode: error.code === "INTERNAL" ? 1 : 2 };
  }
  if (error instanceof UsageError) return { line: `apb: ${error.message}`, exitCode: 2 };
  const message = error instanceof Error ? error.message : String(error);
  return { line: `apb: internal error: ${message}`, exitCode: 1 };
}
