// @apb/runtime: Hugging Face model directories and GGUF files, checked and turned into what the engine loads.
export { RuntimeError, type ErrorCode, type ErrorData } from "./errors.js";
export { engineConfigFromHf, readEngineConfig, MODEL_TYPES, type Architecture, type EngineConfig, type RopeScalingLlama3 } from "./config.js";
export { CONFIG_LIMITS } from "./config-limits.js";
export { readSafetensorsFile, readSafetensorsDir, DTYPE_BYTES, MAX_HEADER_BYTES, WEIGHT_DTYPES, type TensorDtype, type TensorEntry, type WeightDtype } from "./safetensors.js";
export {
  readGgufFile,
  isGgufFile,
  ggmlTypeById,
  ggmlTypeByName,
  ggmlTypeName,
  GGML_TYPES,
  GGUF_SUPPORTED_VERSIONS,
  GGUF_VALUE_TYPES,
  MAX_GGUF_HEADER_BYTES,
  type GgmlType,
  type GgufFile,
  type GgufMetadata,
  type GgufTensorInfo,
  type GgufValue,
  type GgufValueTypeName,
} from "./gguf.js";
export { engineConfigFromGguf, ggufTensors, ggufTensorName, hfTensorName, GGUF_ARCHITECTURES } from "./gguf-model.js";
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
export { buildWeightSpec, buildRetainingHeads, expectedTensors, expectedRetainingTensors, type ExpectedTensor, type RetainingHeads, type WeightSource } from "./weights.js";
export { loadTokenizer, ModelTokenizer, type ChatMessage, type TokenizerSettings } from "./tokenizer.js";
export { ggufTokenizer } from "./gguf-tokenizer.js";
export { splitPrompt, DOCUMENT_QUERY_SEPARATOR, type PromptInput, type PromptTokens } from "./prompt.js";
export {
  writeTinyModel,
  writeTinyGguf,
  writeTinyRetainingHeads,
  permuteRowsForGguf,
  seededNormal,
  seededUniform,
  type TinyGguf,
  type TinyGgufOptions,
  type TinyModel,
  type TinyModelOptions,
} from "./tiny-model.js";
export { SPECIAL_TOKENS, TINY_CHAT_TEMPLATE, tinyTokenizerFiles, type SpecialToken } from "./tiny-tokenizer.js";
export { openModelDir, type ModelDir, type ModelFormat, type OpenOptions } from "./model-dir.js";
export { DEFAULT_HOSTS, DEFAULT_MAX_TOKENS } from "./defaults.js";
export { BACKENDS, loadModel, Model, type BackendName, type HostRun, type LoadOptions } from "./engine.js";
export { buildHostRequest, checkPromptLength, STRATEGIES, type GenerateOptions, type HostRequest, type PrefillProgress, type Strategy } from "./request.js";
export { describeGeneration, type Generation, type GenerationParts, type HostTiming } from "./generation.js";
export { modelFingerprint } from "./fingerprint.js";
export { generationOfJob, jobOf } from "./group-job.js";
export { tokenText, type TokenText } from "./token-text.js";
export { ncclUniqueId, tcpListen, type DataPlane, type TcpEndpoint } from "./data-plane.js";
export { fromNative } from "./native-errors.js";
export { agreeingPrefix, argmax, logitAgreement, type Agreement } from "./agreement.js";
export { doctor, type DoctorDriver, type DoctorGpu, type DoctorLibrary, type DoctorReport, type DoctorSearch, type KernelKind } from "./doctor.js";
export { fetchNamedModel, listCachedModels, modelsCacheDir, namedModel, NAMED_MODELS, resolveModel, type CachedModel, type FetchOptions, type NamedModel } from "./models.js";
