/**
 * First-token logits travel as base64 of little-endian float32: a 128K vocabulary is 683 KiB of
 * text this way against ~1.5 MiB as JSON numbers, and the values round-trip exactly.
 */
export function encodeLogits(logits: Float32Array): string {
  const bytes = new Uint8Array(logits.length * 4);
  const view = new DataView(bytes.buffer);
  logits.forEach((value, i) => view.setFloat32(i * 4, value, true));
  return Buffer.from(bytes.buffer).toString("base64");
}

/** The inverse of encodeLogits; throws a RangeError when the bytes are not whole float32s. */
export function decodeLogits(base64: string): Float32Array {
  const bytes = Buffer.from(base64, "base64");
  if (bytes.length % 4 !== 0) throw new RangeError(`logits: ${bytes.length} bytes is not a whole number of float32s`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(bytes.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(i * 4, true);
  return out;
}
