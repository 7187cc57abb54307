/**
 * The codes the control plane itself raises, one closed list so callers can switch on them.
 * Errors a host's engine raises (INVALID_INPUT, COMM, INFEASIBLE, MODEL_FILE, ...) travel through
 * unchanged as strings: the control plane does not know the engine, so it does not enumerate them.
 * Every code here is also in apb's one list (packages/errors), whose test reads this array.
 */
export const CONTROL_ERROR_CODES = [
  "BAD_FRAME", // not JSON, not an object, or a field of the wrong type or out of bounds
  "FRAME_TOO_LARGE", // over MAX_FRAME_BYTES
  "UNSUPPORTED_VERSION", // `v` is a number other than PROTOCOL_VERSION
  "UNAUTHORIZED", // hello without the coordinator's token
  "DUPLICATE_HELLO", // a second hello on one connection
  "NOT_ALLOWED", // a message this sender may not send (a host's submit, anything before hello)
  "HELLO_TIMEOUT", // no hello in time after connecting
  "MODEL_MISMATCH", // a host loaded another model than the group's
  "GROUP_TIMEOUT", // the group did not form in time
  "HOST_LOST", // a host's socket closed or its heartbeats stopped
  "JOB_ABORTED", // the coordinator aborted a job (a host failed, the group dissolved)
  "CANCELLED", // the caller cancelled
  "BUSY", // the coordinator cannot take this now (too many queued jobs)
  "INVALID_JOB", // a job spec fails its schema before it is sent
  "INVALID_OPTIONS", // a coordinator or agent started with options it cannot use
  "SHUTDOWN", // the coordinator (or agent) is closing
  "CONNECT", // a client or agent could not reach the coordinator
  "LISTEN", // the coordinator could not listen on its address
  "INTERNAL", // a bug: an executor threw something that is not an error, an invariant broke
] as const;

export type ControlErrorCode = (typeof CONTROL_ERROR_CODES)[number];

/** A control-plane code, or an engine's code passed through from a host. */
export type ErrorCode = ControlErrorCode | (string & {});

/** Errors are data, as everywhere in apb: a stable code, a message saying what and why, and the field it is about ("" when none). */
export interface ErrorData {
  code: ErrorCode;
  message: string;
  path: string;
}

/** Refusals that no retry can fix: an agent that gets one stops instead of reconnecting forever. */
export const PERMANENT_ERROR_CODES: readonly ControlErrorCode[] = ["UNAUTHORIZED", "UNSUPPORTED_VERSION", "MODEL_MISMATCH"];

export function isControlErrorCode(code: string): code is ControlErrorCode {
  return (CONTROL_ERROR_CODES as readonly string[]).includes(code);
}
