// The API key: `Authorization: Bearer KEY`, compared in time that depends on neither key (both
// are hashed first, so the comparison is of equal lengths and the key's length never leaks).
import { createHash, timingSafeEqual } from "node:crypto";
import { ServerError } from "./errors.js";

const digest = (text: string) => createHash("sha256").update(text, "utf8").digest();

/** Throws UNAUTHORIZED unless `header` carries `key`. */
export function checkApiKey(header: string | undefined, key: string): void {
  const m = /^Bearer\s+(.+)$/i.exec(header ?? "");
  if (!m) {
    throw new ServerError({ code: "UNAUTHORIZED", path: "Authorization", message: "this server needs an API key: send the header `Authorization: Bearer KEY`" });
  }
  if (!timingSafeEqual(digest(m[1]!.trim()), digest(key))) {
    throw new ServerError({ code: "UNAUTHORIZED", path: "Authorization", message: "the API key is not this server's" });
  }
}
