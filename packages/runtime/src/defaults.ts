// The defaults a request gets where the caller says nothing: one place, read by the library,
// every CLI command and the server, so `plan` and `run` describe the same run.

/** Hosts a request is laid out over (emulated in one process, or a group's processes). */
export const DEFAULT_HOSTS = 4;

/** Tokens generated after the query, at most (generation also stops at the model's EOS). */
export const DEFAULT_MAX_TOKENS = 64;
