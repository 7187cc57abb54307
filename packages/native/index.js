// The addon's public entry: the engine, the data planes between hosts and the machine probe.
// binding.js is what napi-rs generates over the compiled addon; the kernel runner for the GPU
// checks is in the separate "@apb/native/testing" entry.
export { backends, calibrate, CancelToken, checkRequest, DataPlane, doctor, Engine, ncclUniqueId, TcpEndpoint, tcpListen } from "./binding.js";
