import type { ErrorCode } from "./errors.js";

/**
 * WebSocket close codes. 4000-4999 are for applications (RFC 6455 7.4.2); each refusal has its own,
 * so a peer that missed the `error` frame before the close still learns why. 1009 is ws's own,
 * sent when a frame exceeds `maxPayload` before the application sees it.
 */
export const CLOSE_CODES = {
  NORMAL: 1000,
  TOO_BIG: 1009,
  UNAUTHORIZED: 4001,
  BAD_FRAME: 4002,
  UNSUPPORTED_VERSION: 4003,
  DUPLICATE_HELLO: 4004,
  NOT_ALLOWED: 4005,
  SHUTDOWN: 4006, // the coordinator is closing (or replaced this connection): reconnect later
  HELLO_TIMEOUT: 4007,
  MODEL_MISMATCH: 4008,
  HEARTBEAT_TIMEOUT: 4009, // the host stopped answering heartbeats and is counted dead
} as const;

export type CloseCode = (typeof CLOSE_CODES)[keyof typeof CLOSE_CODES];

const BY_ERROR: Partial<Record<string, CloseCode>> = {
  UNAUTHORIZED: CLOSE_CODES.UNAUTHORIZED,
  BAD_FRAME: CLOSE_CODES.BAD_FRAME,
  FRAME_TOO_LARGE: CLOSE_CODES.TOO_BIG,
  UNSUPPORTED_VERSION: CLOSE_CODES.UNSUPPORTED_VERSION,
  DUPLICATE_HELLO: CLOSE_CODES.DUPLICATE_HELLO,
  NOT_ALLOWED: CLOSE_CODES.NOT_ALLOWED,
  SHUTDOWN: CLOSE_CODES.SHUTDOWN,
  HELLO_TIMEOUT: CLOSE_CODES.HELLO_TIMEOUT,
  MODEL_MISMATCH: CLOSE_CODES.MODEL_MISMATCH,
  HOST_LOST: CLOSE_CODES.HEARTBEAT_TIMEOUT,
};

/** The close code that goes with refusing a peer for `code` (BAD_FRAME's for anything unlisted). */
export function closeCodeFor(code: ErrorCode): CloseCode {
  return BY_ERROR[code] ?? CLOSE_CODES.BAD_FRAME;
}

const BY_CLOSE = new Map<number, ErrorCode>(Object.entries(BY_ERROR).map(([code, close]) => [close!, code]));

/** The error code a close code stands for, or null for codes that name none (1000, 1006, ...). */
export function errorCodeForClose(closeCode: number): ErrorCode | null {
  return BY_CLOSE.get(closeCode) ?? null;
}
