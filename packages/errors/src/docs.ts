// docs/ERRORS.md, written from the list so the page cannot drift from it.
import { ERRORS, ERROR_CODES } from "./codes.js";

/** The command that rewrites docs/ERRORS.md (the drift test names it when the page is stale). */
export const WRITE_DOCS_COMMAND = "npm run docs -w @apb/errors";

const cell = (text: string): string => text.replaceAll("|", "\\|").replaceAll("\n", " ");

export function errorsMarkdown(): string {
  const rows = ERROR_CODES.map((code) => {
    const { meaning, exitStatus, httpStatus, fix } = ERRORS[code];
    return `| \`${code}\` | ${cell(meaning)} | ${exitStatus} | ${httpStatus} | ${cell(fix)} |`;
  });
  return [
    "# Error codes",
    "",
    `<!-- Written by \`${WRITE_DOCS_COMMAND}\` from packages/errors/src/codes.ts; edit that list, not this page. -->`,
    "",
    "Every apb error is data: `{code, message, path}`, with `path` the input field, tensor or",
    "file it is about (`\"\"` when none). The codes below are the whole list, from the planner,",
    "the engine, the runtime, the control plane and the CLI; they are stable, so scripts may",
    "switch on them.",
    "",
    "The CLI prints one line, `apb: <message> [<CODE>]`, and exits with the status below: **2**",
    "when you can fix the cause (the input, a file, a flag, the machine's setup, a request that",
    "does not fit), **1** when you cannot (a failure at run time of the driver, the network or",
    "another host, or a bug in apb). Retrying a status-2 error unchanged fails again.",
    "",
    "`apb serve` answers with the HTTP status below and the body",
    "`{\"error\": {code, message, path, type, param}}` (`type` and `param` are OpenAI's names;",
    "`param` is `path`). A 4xx is the client's to fix (429: retry after `Retry-After` seconds;",
    "499 is logged when the client went away); a 5xx is the server's side (503: the hosts are",
    "not all there now, retry later).",
    "",
    "| code | meaning | exit status | HTTP status | how to fix |",
    "| --- | --- | --- | --- | --- |",
    ...rows,
    "",
  ].join("\n");
}
