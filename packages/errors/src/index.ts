export { ERRORS, ERROR_CODES, exitStatusOf, httpStatusOf, isErrorCode, type CodeInfo, type HttpStatus, type ErrorCode, type ErrorData } from "./codes.js";
export { errorsMarkdown, WRITE_DOCS_COMMAND } from "./docs.js";
export { errorDataFromZod, innermostIssue, pathOf, valueAt } from "./zod.js";
