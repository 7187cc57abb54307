// What `apb worker` runs jobs with: the control plane's HostExecutor, wired to the runtime.
// The control plane decides who is in a group; this loads the model it names, joins the
// data plane (TCP for CPU hosts, NCCL for GPUs) and runs this host's part of each job.
import { freemem, hostname } from "node:os";
import type { HostExecutor } from "@apb/control-plane";
import { encodeLogits, type HostJobResult, type JobSpec } from "@apb/protocol";
import { doctor, loadModel, modelFingerprint, ncclUniqueId, tcpListen, type BackendName, type DataPlane, type DoctorGpu, type Model, type TcpEndpoint } from "@apb/runtime";

export interface ExecutorOptions {
  backend: BackendName;
  /** The GPU a CUDA host uses. */
  gpu: number;
  /** Load this path instead of the one the coordinator names (the same model elsewhere on disk). */
  modelPath?: string;
  /** Where this CPU host's TCP data plane listens, and the address other hosts reach it at. */
  dataListen: string;
  dataAdvertise: string;
  /** How long joining a group's data plane may take. */
  joinTimeoutMs: number;
  /** The group size a launcher announced (WORLD_SIZE, SLURM_NTASKS), to warn when the coordinator's differs. */
  launcherWorldSize?: number;
  log: (line: string) => void;
}

export class RuntimeExecutor implements HostExecutor {
  private model: Model | null = null;
  private loadedPath: string | null = null;
  private plane: DataPlane | null = null;
  private readonly endpoint: TcpEndpoint | null;

  constructor(private readonly o: ExecutorOptions) {
    // A CPU host binds its data-plane listener before it joins, so it can report the address.
    this.endpoint = o.backend === "cpu" ? tcpListen(o.dataListen) : null;
  }

  facts() {
    // Sent in hello, before the model loads: the GPU is named from the driver, not the model.
    const device = this.o.backend === "cuda" ? this.device() : null;
    return {
      backend: this.o.backend,
      hostname: hostname(),
      pid: process.pid,
      gpus: device ? [{ name: device.name, memoryBytes: device.totalMemoryBytes }] : [],
      freeMemoryBytes: this.o.backend === "cuda" ? (this.model?.gpuMemory()?.freeBytes ?? null) : freemem(),
    };
  }

  /** This host's GPU as the driver reports it (null where there is none: loading says why). */
  private device(): DoctorGpu | null {
    try {
      return doctor().gpus.find((g) => g.index === this.o.gpu) ?? null;
    } catch {
      return null;
    }
  }

  dataAddress(): string | null {
    if (!this.endpoint) return null;
    const port = this.endpoint.address.split(":").at(-1);
    return `${this.o.dataAdvertise}:${port}`;
  }

  async load(model: { path: string; fingerprint: string | null }, onProgress: (done: number, total: number) => void): Promise<{ fingerprint: string }> {
    const path = this.o.modelPath ?? model.path;
    if (!this.model || this.loadedPath !== path) {
      this.log(`loading ${path} on ${this.o.backend === "cuda" ? `GPU ${this.o.gpu}` : "the CPU"}`);
      this.model = await loadModel(path, { backend: this.o.backend, gpu: this.o.gpu, onProgress });
      this.loadedPath = path;
    }
    return { fingerprint: modelFingerprint(this.model.dir) };
  }

  async groupBootstrap(): Promise<string> {
    // NCCL's unique id is made by rank 0 and handed out; TCP hosts need only their addresses.
    return this.o.backend === "cuda" ? ncclUniqueId() : "";
  }

  async joinGroup(g: { groupId: string; rank: number; worldSize: number; addresses: (string | null)[]; bootstrap: string }): Promise<void> {
    const announced = this.o.launcherWorldSize;
    if (announced !== undefined && announced !== g.worldSize) {
      this.log(`warning: the launcher started ${announced} hosts (WORLD_SIZE/SLURM_NTASKS) but the coordinator's group has ${g.worldSize}; check apb coordinator --hosts`);
    }
    this.plane?.abort("this host joined a new group");
    this.plane = null;
    const model = this.requireModel();
    if (this.o.backend === "cuda") {
      this.plane = await model.connectNccl(g.bootstrap, g.rank, g.worldSize, this.o.joinTimeoutMs);
    } else {
      const missing = g.addresses.findIndex((a) => a === null);
      if (missing >= 0) throw new Error(`host ${missing} of the group has no TCP data address (a CUDA host in a CPU group?)`);
      this.plane = await this.endpoint!.connect(g.groupId, g.rank, g.addresses as string[], this.o.joinTimeoutMs);
    }
    this.log(`joined group ${g.groupId} as rank ${g.rank} of ${g.worldSize} (${this.plane.kind})`);
  }

  async run(job: JobSpec & { jobId: string }, io: { onToken(id: number): void; onProgress(phase: string, done: number, total: number): void }): Promise<HostJobResult> {
    const model = this.requireModel();
    const plane = this.plane;
    if (!plane) throw new Error("this host has no data plane: the group is not formed");
    const { jobId, ...request } = job;
    this.log(`job ${jobId}: prefill of ${request.context.length} + ${request.query.length} tokens (${request.strategy}) as rank ${plane.rank} of ${plane.size}`);
    io.onProgress("prefill", 0, 1);
    // Each layer of this host's prefill travels to the caller, whose bars count them per host.
    const r = await model.runHost({ ...request, hosts: plane.size }, plane, (id) => io.onToken(id), (p) => io.onProgress("prefill", p.layer, p.layers));
    io.onProgress("done", 1, 1);
    return {
      rank: r.rank,
      tokens: r.tokens,
      firstLogits: r.rank === plane.size - 1 ? encodeLogits(r.firstLogits) : null,
      anchorTokens: r.anchorTokens,
      passingTokens: r.passingTokens,
      blockTokens: r.blockTokens,
      timings: {
        prefillMs: r.timing.prefillMs,
        prefillWallMs: r.prefillWallMs,
        computeMs: r.timing.computeMs,
        commMs: r.timing.commMs,
        prefillRows: r.timing.prefillRows,
        phasesMs: r.timing.phasesMs,
      },
    };
  }

  abort(reason: string): void {
    this.plane?.abort(reason);
  }

  async leaveGroup(): Promise<void> {
    this.plane?.abort("the group was dissolved");
    this.plane = null;
  }

  private requireModel(): Model {
    if (!this.model) throw new Error("no model is loaded on this host yet");
    return this.model;
  }

  private log(line: string): void {
    this.o.log(line);
  }
}
