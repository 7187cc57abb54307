// Errors from the addon arrive as JS errors whose message is "APB_ERROR:" + JSON
// {code, message, path}; this turns them back into RuntimeErrors.
import { RuntimeError, type ErrorCode } from "./errors.js";

const PREFIX = "APB_ERROR:";

export function fromNative(error: unknown): RuntimeError {
  const message = error instanceof Error ? error.message : String(error);
  if (message.startsWith(PREFIX)) {
    try {
      const data = JSON.parse(message.slice(PREFIX.length)) as { code: ErrorCode; message: string; path: string };
      return new RuntimeError(data);
    } catch {
      // fall through: report the raw message
    }
  }
  return new RuntimeError({ code: "INTERNAL", path: "", message: `the native engine failed: ${message}` });
}

export async function native<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (e) {
    throw fromNative(e);
  }
}
