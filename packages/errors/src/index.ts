export { ERRORS, ERROR_CODES, exitStatusOf, httpStatusOf, isErrorCode, type CodeInfo, type HttpStatus, type ErrorCode, type ErrorData } from "./codes.js";
export { errorsMarkdown, WRITE_DOCS_COMMAND } from "./docs.js";
export { ApbError, type ErrorInit } from "./error.js";
export { ADDON_ERROR_PREFIX, carriedErrorData, errorDataFromAddonMessage, errorDataFromUnknown, messageOf } from "./thrown.js";
export { errorDataFromZod, innermostIssue, pathOf, plainWording, valueAt, type ZodErrorCode, type ZodProblem } from "./zod.js";
