import { ApbError } from "@apb/errors";
import type { ErrorCode, ErrorData } from "@apb/protocol";

/** Errors are data: {code, message, path}, as every apb error; JSON.stringify gives exactly that. */
export class ControlPlaneError extends ApbError<ErrorCode> {
  override readonly name = "ControlPlaneError";
}

/** Whatever an executor threw, as error data; an engine's {code, message, path} keeps its code. */
export function toErrorData(e: unknown): ErrorData {
  if (e !== null && typeof e === "object" && "code" in e && "message" in e && typeof e.code === "string" && e.code !== "" && typeof e.message === "string") {
    const path = "path" in e && typeof e.path === "string" ? e.path : "";
    return { code: e.code.slice(0, 64), message: e.message.slice(0, 65_536), path: path.slice(0, 1024) };
  }
  const message = e instanceof Error ? e.message : String(e);
  return { code: "INTERNAL", message: message.slice(0, 65_536), path: "" };
}
