// Errors from the addon arrive as JS errors whose message is "APB_ERROR:" + JSON
// {code, message, path}; this turns them back into RuntimeErrors.
import { RUNTIME_ERROR_CODES, RuntimeError, type ErrorCode } from "./errors.js";

const PREFIX = "APB_ERROR:";

const isRuntimeCode = (code: unknown): code is ErrorCode => (RUNTIME_ERROR_CODES as readonly unknown[]).includes(code);

export function fromNative(error: unknown): RuntimeError {
  const message = error instanceof Error ? error.message : String(error);
  const data = message.startsWith(PREFIX) ? parsed(message.slice(PREFIX.length)) : null;
  if (data && typeof data.message === "string") {
    const path = typeof data.path === "string" ? data.path : "";
    if (isRuntimeCode(data.code)) return new RuntimeError({ code: data.code, message: data.message, path });
    // The engine's codes are all runtime codes (packages/errors checks it); another is a bug.
    return new RuntimeError({ code: "INTERNAL", path, message: `the native engine raised an unknown code ${JSON.stringify(data.code)}: ${data.message}` });
  }
  return new RuntimeError({ code: "INTERNAL", path: "", message: `the native engine failed: ${message}` });
}

function parsed(json: string): { code?: unknown; message?: unknown; path?: unknown } | null {
  try {
    const value: unknown = JSON.parse(json);
    return typeof value === "object" && value !== null ? value : null;
  } catch {
    return null; // the caller reports the raw message
  }
}

export async function native<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (e) {
    throw fromNative(e);
  }
}
