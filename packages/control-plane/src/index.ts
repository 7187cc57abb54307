// @apb/control-plane: the coordinator, host agents and callers of apb's WebSocket control plane.
export { Coordinator, type CoordinatorOptions } from "./coordinator.js";
export { CoordinatorClient, type ConnectOptions } from "./client.js";
export { HostAgent, type HostAgentOptions } from "./agent.js";
export type { GroupMembership, HostExecutor, RunIO } from "./executor.js";
export type { JobProgress, SubmitOptions } from "./jobs.js";
export { ControlPlaneError } from "./errors.js";
export type { BackoffOptions } from "./backoff.js";
// The protocol's types these signatures use, so a user needs one import.
export type { ErrorCode, ErrorData, HostFacts, HostJobResult, JobResult, JobSpec, ModelRef, StatusSnapshot } from "@apb/protocol";
