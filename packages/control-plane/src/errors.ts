import { ApbError, errorDataFromUnknown } from "@apb/errors";
import type { ErrorCode, ErrorData } from "@apb/protocol";

/** Errors are data: {code, message, path}, as every apb error; JSON.stringify gives exactly that. */
export class ControlPlaneError extends ApbError<ErrorCode> {
  override readonly name = "ControlPlaneError";
}

/**
 * Whatever an executor threw, as error data (@apb/errors' errorDataFromUnknown: an engine's
 * {code, message, path} keeps its code, anything else is INTERNAL), cut to the protocol's
 * bounds on each field so it can always be sent.
 */
export function toErrorData(e: unknown): ErrorData {
  const { code, message, path } = errorDataFromUnknown(e);
  return { code: code.slice(0, 64), message: message.slice(0, 65_536), path: path.slice(0, 1024) };
}
