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
  if (isErrorData(error)) return { line: `apb: ${error.message} [${error.code}]`, exitCode: 1 };
  const message = error instanceof Error ? error.message : String(error);
  return { line: `apb: internal error: ${message}`, exitCode: 1 };
}

/** Errors that are data from the other packages (the control plane's, a host's). */
function isErrorData(error: unknown): error is { code: string; message: string } {
  const code = error instanceof Error ? (error as Error & { code?: unknown }).code : undefined;
  return typeof code === "string" && /^[A-Z_]+$/.test(code);
}
