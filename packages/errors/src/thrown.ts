// Whatever was thrown, as apb error data: the one reader of the {code, message, path} a thrown
// value carries, which the control plane (for what an executor threw), the server (for what a
// handler threw), the CLI (for what a command threw) and the runtime (for what the addon threw)
// use. The protocol keeps to itself: it imports nothing of ours, by design.
import type { ErrorData } from "./codes.js";
import { ApbError } from "./error.js";

/** The addon's errors are JS Errors whose message is this prefix and then JSON `{code, message, path}`. */
export const ADDON_ERROR_PREFIX = "APB_ERROR:";

/** What an error code looks like: upper-case words joined by `_` (apb's codes, and Node's ENOENT or ERR_...). */
const CODE = /^[A-Z][A-Z0-9_]*$/;

/** `{code, message, path}` when `value` has a code that looks like one and a text message (a path that is not text is ""); else null. */
function dataIn(value: unknown): ErrorData<string> | null {
  if (typeof value !== "object" || value === null) return null;
  const { code, message, path } = value as { code?: unknown; message?: unknown; path?: unknown };
  if (typeof code !== "string" || !CODE.test(code) || typeof message !== "string") return null;
  return { code, message, path: typeof path === "string" ? path : "" };
}

/** The error data in an addon error's message (`APB_ERROR:{"code":...}`), or null when the message is not one or its JSON is not error data. */
export function errorDataFromAddonMessage(message: string): ErrorData<string> | null {
  if (!message.startsWith(ADDON_ERROR_PREFIX)) return null;
  try {
    return dataIn(JSON.parse(message.slice(ADDON_ERROR_PREFIX.length)));
  } catch {
    return null;
  }
}

/**
 * The error data a thrown value carries, or null when it carries none: an ApbError's own
 * data; an addon error's, parsed from its message; any object's {code, message, path} whose
 * code looks like a code (an engine's error passed through a host, a Node system error).
 */
export function carriedErrorData(e: unknown): ErrorData<string> | null {
  if (e instanceof ApbError) return e.toJSON();
  if (e instanceof Error) {
    const addon = errorDataFromAddonMessage(e.message);
    if (addon) return addon;
  }
  return dataIn(e);
}

/** A thrown value's message: an Error's own, anything else as text. */
export function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Whatever was thrown, as error data: what it carries (carriedErrorData), else INTERNAL with its message and no path. */
export function errorDataFromUnknown(e: unknown): ErrorData<string> {
  return carriedErrorData(e) ?? { code: "INTERNAL", message: messageOf(e), path: "" };
}
