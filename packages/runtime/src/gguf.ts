// GGUF files (llama.cpp's format): the header, metadata and tensor directory, read without
// touching tensor data. The engine reads (and dequantizes) the data itself from the offsets
// given here. Layout (little-endian): magic "GGUF", u32 version (2 or 3), u64 tensor count,
// u64 metadata count, the metadata (key, type, value), the tensor infos (name, dims innermost
// first, type, offset into the data section), padding to `general.alignment` (default 32),
// then the data section.

/** One metadata value: integers up to 32 bits, and floats, as numbers; 64-bit integers as bigint. */
export type GgufValue = number | bigint | boolean | string | GgufValue[];
export type GgufMetadata = ReadonlyMap<string, GgufValue>;

export interface GgufTensorInfo {
  name: string;
  /** Dimensions as the file stores them: innermost (contiguous) first, llama.cpp's ne[]. */
  dims: number[];
  /** The ggml type id, and its name ("F32", "Q4_K", ...; "type 99" for ids this reader does not know). */
  typeId: number;
  typeName: string;
  /** Absolute byte offset of the tensor's data in the file, and its length in bytes. */
  offset: number;
  byteLength: number;
}

export interface GgufFile {
  /** Absolute path. */
  file: string;
  version: number;
  metadata: GgufMetadata;
  tensors: GgufTensorInfo[];
  alignment: number;
  /** Absolute offset of the data section. */
  dataOffset: number;
  fileByteLength: number;
}
