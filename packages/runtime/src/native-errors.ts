// Errors from the addon arrive as JS errors whose message is "APB_ERROR:" + JSON
// {code, message, path} (read by @apb/errors' errorDataFromAddonMessage); this turns them
// back into RuntimeErrors.
import { errorDataFromAddonMessage, messageOf } from "@apb/errors";
import { RUNTIME_ERROR_CODES, RuntimeError, type ErrorCode } from "./errors.js";

const isRuntimeCode = (code: unknown): code is ErrorCode => (RUNTIME_ERROR_CODES as readonly unknown[]).includes(code);

export function fromNative(error: unknown): RuntimeError {
  const message = messageOf(error);
  const data = errorDataFromAddonMessage(message);
  if (data) {
    const { code, path } = data;
    if (isRuntimeCode(code)) return new RuntimeError({ code, message: data.message, path });
    // The engine's codes are all runtime codes (packages/errors checks it); another is a bug.
    return new RuntimeError({ code: "INTERNAL", path, message: `the native engine raised an unknown code ${JSON.stringify(code)}: ${data.message}` });
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
