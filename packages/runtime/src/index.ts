// @apb/runtime: Hugging Face model directories, checked and turned into what the engine loads.
export { RuntimeError, type ErrorCode, type ErrorData } from "./errors.js";
export { engineConfigFromHf, readEngineConfig, MODEL_TYPES, type Architecture, type EngineConfig, type RopeScalingLlama3 } from "./config.js";
export { readSafetensorsFile, readSafetensorsDir, DTYPE_BYTES, MAX_HEADER_BYTES, type TensorDtype, type TensorEntry } from "./safetensors.js";
export { encodeSafetensors, encodeTensorData, f32ToBf16Bits, f32ToF16Bits, writeSafetensors, type TensorToWrite } from "./safetensors-writer.js";
export { buildWeightSpec, buildRetainingHeads, expectedTensors, expectedRetainingTensors, type ExpectedTensor, type RetainingHeads } from "./weights.js";
export { loadTokenizer, ModelTokenizer, type ChatMessage, type TokenizerSettings } from "./tokenizer.js";
export { splitPrompt, DOCUMENT_QUERY_SEPARATOR, type PromptInput, type PromptTokens } from "./prompt.js";
export { writeTinyModel, writeTinyRetainingHeads, seededNormal, seededUniform, type TinyModel, type TinyModelOptions } from "./tiny-model.js";
export { SPECIAL_TOKENS, TINY_CHAT_TEMPLATE, tinyTokenizerFiles, type SpecialToken } from "./tiny-tokenizer.js";
export { openModelDir, type ModelDir, type OpenOptions } from "./model-dir.js";
export { BACKENDS, loadModel, Model, type BackendName, type HostRun, type LoadOptions } from "./engine.js";
export { buildHostRequest, STRATEGIES, type GenerateOptions, type HostRequest, type Strategy } from "./request.js";
export { describeGeneration, type Generation, type GenerationParts, type HostTiming } from "./generation.js";
export { modelFingerprint } from "./fingerprint.js";
export { ncclUniqueId, tcpListen, type DataPlane, type TcpEndpoint } from "./data-plane.js";
export { fromNative } from "./native-errors.js";
export { agreeingPrefix, argmax, logitAgreement, type Agreement } from "./agreement.js";
export { doctor, type DoctorDriver, type DoctorGpu, type DoctorLibrary, type DoctorReport, type DoctorSearch, type KernelKind } from "./doctor.js";
