// The data plane hosts that are processes exchange tensors over: TCP between CPU hosts,
// NCCL between GPUs (joined through Model.connectNccl). The control plane decides who is
// in a group; these only connect and abort.
import { ncclUniqueId as nativeNcclUniqueId, tcpListen as nativeTcpListen, type DataPlane, type TcpEndpoint } from "@apb/native";
import { fromNative } from "./native-errors.js";

export type { DataPlane, TcpEndpoint };

/** Binds a CPU host's TCP data-plane listener ("host:0" picks a free port). */
export function tcpListen(address: string): TcpEndpoint {
  try {
    return nativeTcpListen(address);
  } catch (e) {
    throw fromNative(e);
  }
}

/** A fresh NCCL unique id (hex), made on rank 0 and handed to the others. */
export function ncclUniqueId(): string {
  try {
    return nativeNcclUniqueId();
  } catch (e) {
    throw fromNative(e);
  }
}
