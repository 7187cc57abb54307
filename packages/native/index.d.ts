// The addon's public entry (see index.js); the declarations are napi-rs's, in binding.d.ts.
export { backends, calibrate, CancelToken, checkRequest, DataPlane, doctor, Engine, ncclUniqueId, TcpEndpoint, tcpListen } from "./binding.js";
export type {
  CalibrateResult,
  CalibrateSpec,
  ConfigSpec,
  DoctorDriver,
  DoctorGpu,
  DoctorLibrary,
  DoctorReport,
  DoctorSearch,
  GenerateResult,
  GemmRate,
  GenerateSpec,
  GpuMemory,
  HostGenerateResult,
  HostTiming,
  ModelSpec,
  PrefillProgress,
  RopeScalingSpec,
  TensorSpec,
} from "./binding.js";
