import { createHash, timingSafeEqual } from "node:crypto";

/**
 * Whether a presented token is the coordinator's, in time that depends on neither: both are
 * hashed first, so timingSafeEqual compares equal lengths and the token's length never leaks.
 */
export function tokensMatch(presented: string, expected: string): boolean {
  const digest = (text: string) => createHash("sha256").update(text, "utf8").digest();
  return timingSafeEqual(digest(presented), digest(expected));
}
