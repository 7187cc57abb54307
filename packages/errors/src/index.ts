export { ERRORS, ERROR_CODES, exitStatusOf, isErrorCode, type CodeInfo, type ErrorCode, type ErrorData } from "./codes.js";
export { errorsMarkdown, WRITE_DOCS_COMMAND } from "./docs.js";
export { innermostIssue, pathOf, valueAt } from "./zod.js";
