// @apb/server: apb's OpenAI-compatible HTTP server over a group of hosts.
export { ApbServer, defaultLogger } from "./server.js";
export type { ServerOptions } from "./options.js";
export type { JobGroup } from "./group.js";
export { splitLastParagraph } from "./prompt.js";
export { ServerError, type ErrorBody } from "./errors.js";
export type { ApbReport } from "./completion.js";
