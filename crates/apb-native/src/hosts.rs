//! Hosts that are processes: the data plane a host joins its group with (TCP between CPU
//! hosts, NCCL between GPUs) and the call that runs this host's part of a request on it.
//! The control plane (TypeScript) decides who is in a group; this file only connects and
//! runs what it is told, and lets the control plane abort a data plane from any thread.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use apb_engine::tcp::{TcpAbort, TcpComm};
use apb_engine::{EngineError, HostOutput, LayerDone};
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;

use crate::{guarded, host_timing, request_of, Engine, GenerateSpec, HostTiming, Loaded};

/// A connected data plane of one group.
enum Plane {
    Tcp(TcpComm),
    Nccl(apb_cuda::nccl::NcclComm),
}

#[derive(Clone)]
enum Aborter {
    Tcp(TcpAbort),
    Nccl(apb_cuda::nccl::NcclAbort),
}

/// This host's end of a group's data plane. One request runs on it at a time; `abort`
/// works from any thread while one runs.
#[napi]
pub struct DataPlane {
    plane: Arc<Mutex<Plane>>,
    aborter: Aborter,
    rank: u32,
    size: u32,
    kind: &'static str,
}

#[napi]
impl DataPlane {
    #[napi(getter)]
    pub fn rank(&self) -> u32 {
        self.rank
    }
    #[napi(getter)]
    pub fn size(&self) -> u32 {
        self.size
    }
    /// "tcp" or "nccl".
    #[napi(getter)]
    pub fn kind(&self) -> String {
        self.kind.to_string()
    }
    /// Breaks the data plane: a request blocked on a collective returns a COMM error that
    /// carries `reason`. The plane cannot be used again; the group is formed anew.
    #[napi]
    pub fn abort(&self, reason: String) {
        match &self.aborter {
            Aborter::Tcp(a) => a.abort(&reason),
            Aborter::Nccl(a) => a.abort(&reason),
        }
    }
    #[napi(getter)]
    pub fn aborted(&self) -> bool {
        match &self.aborter {
            Aborter::Tcp(a) => a.is_aborted(),
            Aborter::Nccl(a) => a.is_aborted(),
        }
    }
}

fn data_plane(plane: Plane, aborter: Aborter, rank: usize, size: usize, kind: &'static str) -> DataPlane {
    DataPlane { plane: Arc::new(Mutex::new(plane)), aborter, rank: rank as u32, size: size as u32, kind }
}

/// The listener a CPU host binds before it joins the control plane; its address is what
/// the host reports, and other hosts connect to it at rendezvous.
#[napi]
pub struct TcpEndpoint {
    listener: Arc<TcpListener>,
    address: String,
}

/// Binds a TCP data-plane listener ("0.0.0.0:0" or "127.0.0.1:0" picks a free port).
#[napi]
pub fn tcp_listen(address: String) -> Result<TcpEndpoint> {
    guarded("tcpListen", || {
        let (listener, local) = apb_engine::tcp::listen(&address)?;
        Ok(TcpEndpoint { listener: Arc::new(listener), address: local.to_string() })
    })
}

#[napi]
impl TcpEndpoint {
    /// "ip:port" as bound.
    #[napi(getter)]
    pub fn address(&self) -> String {
        self.address.clone()
    }

    /// Joins group `groupId` as `rank`: connects to lower ranks, accepts higher ones.
    #[napi(ts_return_type = "Promise<DataPlane>")]
    pub fn connect(&self, group_id: String, rank: u32, addresses: Vec<String>, timeout_ms: u32) -> AsyncTask<ConnectTcpTask> {
        AsyncTask::new(ConnectTcpTask { listener: self.listener.clone(), group_id, rank: rank as usize, addresses, timeout_ms: timeout_ms as u64 })
    }
}

pub struct ConnectTcpTask {
    listener: Arc<TcpListener>,
    group_id: String,
    rank: usize,
    addresses: Vec<String>,
    timeout_ms: u64,
}

impl Task for ConnectTcpTask {
    type Output = DataPlane;
    type JsValue = DataPlane;

    fn compute(&mut self) -> Result<DataPlane> {
        guarded("connect", || {
            let comm = TcpComm::connect(&self.listener, &self.group_id, self.rank, &self.addresses, self.timeout_ms)?;
            let aborter = Aborter::Tcp(comm.aborter());
            Ok(data_plane(Plane::Tcp(comm), aborter, self.rank, self.addresses.len(), "tcp"))
        })
    }

    fn resolve(&mut self, _env: Env, plane: DataPlane) -> Result<DataPlane> {
        Ok(plane)
    }
}

/// A fresh NCCL unique id (hex), made by rank 0 and handed to the others by the coordinator.
#[napi]
pub fn nccl_unique_id() -> Result<String> {
    guarded("ncclUniqueId", apb_cuda::nccl::unique_id)
}

#[napi(object)]
pub struct HostGenerateResult {
    pub tokens: Vec<u32>,
    pub first_logits: Float32Array,
    pub timing: HostTiming,
    pub anchor_tokens: u32,
    pub passing_tokens: u32,
    pub block_tokens: u32,
    /// From the call's start to the end of this host's prefill, as this host saw it.
    pub prefill_wall_ms: f64,
    /// From the call's start to the first token, as this host saw it.
    pub first_token_wall_ms: f64,
    pub total_wall_ms: f64,
}

pub struct ConnectNcclTask {
    model: Arc<Loaded>,
    unique_id: String,
    rank: usize,
    size: usize,
    timeout_ms: u64,
}

impl Task for ConnectNcclTask {
    type Output = DataPlane;
    type JsValue = DataPlane;

    fn compute(&mut self) -> Result<DataPlane> {
        guarded("connectNccl", || {
            let Loaded::Cuda(m) = self.model.as_ref() else {
                return Err(EngineError::invalid("backend", "NCCL joins GPUs: load the model with backend 'cuda', or use the TCP data plane for CPU hosts"));
            };
            let comm = apb_cuda::nccl::NcclComm::connect(&m.backend, &self.unique_id, self.rank, self.size, self.timeout_ms)?;
            let aborter = Aborter::Nccl(comm.aborter());
            Ok(data_plane(Plane::Nccl(comm), aborter, self.rank, self.size, "nccl"))
        })
    }

    fn resolve(&mut self, _env: Env, plane: DataPlane) -> Result<DataPlane> {
        Ok(plane)
    }
}

pub struct GenerateHostTask {
    model: Arc<Loaded>,
    plane: Arc<Mutex<Plane>>,
    spec: GenerateSpec,
    on_token: Option<ThreadsafeFunction<u32, (), u32, Status, false>>,
    on_progress: Option<crate::PrefillFn>,
}

impl Task for GenerateHostTask {
    type Output = HostOutput;
    type JsValue = HostGenerateResult;

    fn compute(&mut self) -> Result<HostOutput> {
        let on_token = self.on_token.take();
        let on_progress = self.on_progress.take();
        let (model, plane, spec) = (self.model.clone(), self.plane.clone(), &self.spec);
        guarded("generateHost", move || {
            let request = request_of(spec)?;
            let notify = |token: u32| {
                if let Some(f) = &on_token {
                    f.call(token, ThreadsafeFunctionCallMode::NonBlocking);
                }
                true
            };
            let report = |d: LayerDone| {
                if let Some(f) = &on_progress {
                    f.call(crate::PrefillProgress::from(d), ThreadsafeFunctionCallMode::NonBlocking);
                }
            };
            let on_layer = on_progress.as_ref().map(|_| &report as &(dyn Fn(LayerDone) + Sync));
            let mut held = plane.try_lock().map_err(|_| EngineError::invalid("dataPlane", "a request is already running on this data plane; one at a time"))?;
            match (model.as_ref(), &mut *held) {
                (Loaded::Cpu(m), Plane::Tcp(c)) => apb_engine::generate_host_reporting(m, &request, c, &notify, on_layer),
                (Loaded::Cuda(m), Plane::Tcp(c)) => apb_engine::generate_host_reporting(m, &request, c, &notify, on_layer),
                (Loaded::Cuda(m), Plane::Nccl(c)) => apb_engine::generate_host_reporting(m, &request, c, &notify, on_layer),
                (Loaded::Cpu(_), Plane::Nccl(_)) => Err(EngineError::invalid("dataPlane", "a CPU model cannot use an NCCL data plane")),
            }
        })
    }

    fn resolve(&mut self, _env: Env, out: HostOutput) -> Result<HostGenerateResult> {
        Ok(HostGenerateResult {
            tokens: out.tokens,
            first_logits: Float32Array::new(out.first_logits),
            timing: host_timing(&out.timings),
            anchor_tokens: out.anchor_tokens as u32,
            passing_tokens: out.passing_tokens as u32,
            block_tokens: out.block_tokens as u32,
            prefill_wall_ms: out.prefill_wall_ms,
            first_token_wall_ms: out.first_token_wall_ms,
            total_wall_ms: out.total_wall_ms,
        })
    }
}

#[napi]
impl Engine {
    /// Joins an NCCL group on this model's GPU (CUDA models only).
    #[napi(ts_return_type = "Promise<DataPlane>")]
    pub fn connect_nccl(&self, unique_id: String, rank: u32, size: u32, timeout_ms: u32) -> Result<AsyncTask<ConnectNcclTask>> {
        let model = self.loaded().map_err(crate::to_js)?;
        Ok(AsyncTask::new(ConnectNcclTask { model, unique_id, rank: rank as usize, size: size as usize, timeout_ms: timeout_ms as u64 }))
    }

    /// Runs this host's part of a request over `plane`; every host of the group must be
    /// given the same request. Only the last host calls `onToken`; every host calls
    /// `onProgress` as it finishes each layer of its prefill.
    #[napi(ts_return_type = "Promise<HostGenerateResult>")]
    pub fn generate_host(
        &self,
        spec: GenerateSpec,
        plane: &DataPlane,
        on_token: Option<ThreadsafeFunction<u32, (), u32, Status, false>>,
        on_progress: Option<ThreadsafeFunction<crate::PrefillProgress, (), crate::PrefillProgress, Status, false>>,
    ) -> Result<AsyncTask<GenerateHostTask>> {
        let model = self.loaded().map_err(crate::to_js)?;
        Ok(AsyncTask::new(GenerateHostTask { model, plane: plane.plane.clone(), spec, on_token, on_progress }))
    }
}
