/** Every message carries `v: PROTOCOL_VERSION`; a peer speaking another version is refused, not guessed at. */
export const PROTOCOL_VERSION = 1;

/**
 * The largest frame either side accepts, in bytes. A job carries its context as token ids in JSON
 * (at most 11 bytes an id with its comma), so a 1M-token job's `job` frame is about 11 MiB; 32 MiB
 * leaves room for that and a query, and still bounds what one bad peer can make the coordinator buffer.
 */
export const MAX_FRAME_BYTES = 32 * 1024 * 1024;
