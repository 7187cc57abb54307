// @apb/runtime: Hugging Face model directories and GGUF files, checked and turned into what the engine loads.
// This is the public entry: what a user of the runtime calls. Test fixtures (tiny random
// models, the GGUF and safetensors writers that make them, seeded random numbers, logit
// agreement) are in the second entry, "@apb/runtime/testing".

// Errors: every failure is a RuntimeError with a code from @apb/errors.
export { RuntimeError, type ErrorCode, type ErrorData } from "./errors.js";

// Models: a directory, GGUF file or named model opened, then loaded onto emulated or real hosts.
export { openModelDir, type ModelDir, type ModelFormat, type OpenOptions } from "./model-dir.js";
export { BACKENDS, loadModel, Model, type BackendName, type HostRun, type LoadOptions } from "./engine.js";
export { modelFingerprint } from "./fingerprint.js";
export { fetchNamedModel, listCachedModels, modelsCacheDir, namedModel, NAMED_MODELS, resolveModel, type CachedModel, type FetchOptions, type NamedModel } from "./models.js";

// Requests: what a generation asks for, its defaults and its limits, and the prompt's parts.
export { DEFAULT_HOSTS, DEFAULT_MAX_TOKENS } from "./defaults.js";
export {
  buildHostRequest,
  checkPromptLength,
  REQUEST_LIMITS,
  STRATEGIES,
  type GenerateOptions,
  type HostRequest,
  type PrefillProgress,
  type Strategy,
} from "./request.js";
export { splitPrompt, DOCUMENT_QUERY_SEPARATOR, type PromptInput, type PromptTokens } from "./prompt.js";

// Results: a generation, its text and timings, group jobs, and answers compared.
export { describeGeneration, type Generation, type GenerationParts, type HostTiming } from "./generation.js";
export { generationOfJob, jobOf } from "./group-job.js";
export { tokenText, type TokenText } from "./token-text.js";
export { agreeingPrefix, argmax } from "./agreement.js";

// Hosts in separate processes: the data planes between them.
export { ncclUniqueId, tcpListen, type DataPlane, type TcpEndpoint } from "./data-plane.js";

// The machine: what `apb doctor` reports, and its rates for the planner (`apb calibrate`).
export { calibrate, type CalibrateOptions, type Calibration, type CalibrationShape, type CalibrationStep, type GemmRate } from "./calibrate.js";
export { doctor, type DoctorDriver, type DoctorGpu, type DoctorLibrary, type DoctorReport, type DoctorSearch, type KernelKind } from "./doctor.js";

// Tokenizers.
export { loadTokenizer, ModelTokenizer, type ChatMessage, type TokenizerSettings } from "./tokenizer.js";
export { ggufTokenizer } from "./gguf-tokenizer.js";

// Model files read and checked without loading them: config, safetensors, GGUF, the weight spec.
export { engineConfigFromHf, readEngineConfig, MODEL_TYPES, type Architecture, type EngineConfig, type RopeScalingLlama3 } from "./config.js";
export { CONFIG_LIMITS } from "./config-limits.js";
export { readSafetensorsFile, readSafetensorsDir, MAX_HEADER_BYTES, WEIGHT_DTYPES, type TensorDtype, type TensorEntry, type WeightDtype } from "./safetensors.js";
export {
  readGgufFile,
  isGgufFile,
  GGUF_SUPPORTED_VERSIONS,
  MAX_GGUF_HEADER_BYTES,
  type GgmlType,
  type GgufFile,
  type GgufMetadata,
  type GgufTensorInfo,
  type GgufValue,
} from "./gguf.js";
export { engineConfigFromGguf, GGUF_ARCHITECTURES } from "./gguf-model.js";
export { buildWeightSpec, type WeightSource } from "./weights.js";
