// The one base of apb's error classes: the planner's PlannerError, the runtime's RuntimeError,
// the control plane's ControlPlaneError, the server's ServerError and the CLI's UsageError.
// Each extends it with its own name and code union, so `instanceof` still tells them apart,
// while what they share (the data, its JSON) lives here once.
import type { ErrorCode, ErrorData } from "./codes.js";

/** What an error is made from: its code, its message and, where it is about one, the input field, tensor or file ("" or left out when none). */
export interface ErrorInit<Code extends string = ErrorCode> {
  code: Code;
  message: string;
  path?: string;
}

/**
 * An Error that is also data, {code, message, path}: JSON.stringify writes exactly that, and
 * `code` is one of `Code` (a package narrows it to the codes it raises). A subclass sets its
 * `name` as a field (`override readonly name = "PlannerError"`), which survives minifiers.
 */
export class ApbError<Code extends string = ErrorCode> extends Error implements ErrorData<Code> {
  override readonly name: string = "ApbError";
  readonly code: Code;
  readonly path: string;

  constructor(data: ErrorInit<Code>) {
    super(data.message);
    this.code = data.code;
    this.path = data.path ?? "";
  }

  toJSON(): ErrorData<Code> {
    return { code: this.code, message: this.message, path: this.path };
  }
}
