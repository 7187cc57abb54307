//! The Node addon: napi-rs bindings over apb-engine, kept apart from the engine crate.
//! Long calls run on libuv's thread pool (AsyncTask) and resolve promises; progress and
//! tokens reach JS through thread-safe functions. Errors cross as JS errors whose message
//! is `APB_ERROR:` + JSON `{code, message, path}`; panics are caught and reported as
//! INTERNAL errors, never unwound across FFI.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use apb_engine::config::{Architecture, Llama3Scaling, ModelConfig};
use apb_engine::cpu::backend::Cpu;
use apb_engine::error::code;
use apb_engine::safetensors::{DType, TensorEntry, TensorFiles};
use apb_engine::sample::Sampling;
use apb_engine::timing::PHASES;
use apb_engine::weights::Cancellable;
use apb_engine::{Cancel, EngineError, Hooks, LayerDone, Model, Request, Transfer};
use apb_plan::input::{Scorer, Strategy};
use apb_plan::json::Json;
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;

const ERROR_PREFIX: &str = "APB_ERROR:";

pub(crate) fn to_js(e: EngineError) -> Error {
    let body = Json::obj(vec![("code", Json::str(e.code)), ("message", Json::string(e.message)), ("path", Json::string(e.path))])
        .write()
        .unwrap_or_default();
    Error::new(Status::GenericFailure, format!("{ERROR_PREFIX}{body}"))
}

/// Runs `f`, turning a panic into an INTERNAL error instead of unwinding into Node.
fn guarded<T>(what: &str, f: impl FnOnce() -> apb_engine::Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r.map_err(to_js),
        Err(panic) => {
            let detail = panic.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| panic.downcast_ref::<String>().cloned());
            Err(to_js(EngineError::new(code::INTERNAL, what, format!("{what} failed unexpectedly: {}", detail.unwrap_or_default()))))
        }
    }
}

#[napi(object)]
pub struct RopeScalingSpec {
    #[napi(js_name = "type")]
    pub kind: String,
    pub factor: f64,
    pub low_freq_factor: f64,
    pub high_freq_factor: f64,
    pub original_max_positions: f64,
}

#[napi(object)]
pub struct ConfigSpec {
    pub architecture: String,
    pub vocab: u32,
    pub hidden: u32,
    pub layers: u32,
    pub heads: u32,
    pub kv_heads: u32,
    pub head_dim: u32,
    pub intermediate: u32,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub rope_scaling: Option<RopeScalingSpec>,
    pub tied_embeddings: bool,
    pub attention_bias: bool,
    pub max_positions: u32,
}

#[napi(object)]
pub struct TensorSpec {
    pub name: String,
    pub file: String,
    pub dtype: String,
    pub shape: Vec<u32>,
    /// Absolute byte offset of the tensor's data in `file`.
    pub offset: f64,
    pub byte_length: f64,
    /// Heads (KV heads for k_proj) of a llama-arch GGUF q_proj/k_proj: llama.cpp stored
    /// their rows interleaved per head, and the engine puts them back in HF order.
    pub permute_heads: Option<u32>,
}

#[napi(object)]
pub struct ModelSpec {
    pub config: ConfigSpec,
    pub tensors: Vec<TensorSpec>,
    /// Locret retaining heads, if any.
    pub retaining: Option<Vec<TensorSpec>>,
    /// "cpu" (default) or "cuda" (see backends()).
    pub backend: Option<String>,
    /// The GPU a CUDA model loads on (default 0): one process per GPU.
    pub gpu: Option<u32>,
}

fn config_of(c: &ConfigSpec) -> apb_engine::Result<ModelConfig> {
    let architecture = match c.architecture.as_str() {
        "llama" => Architecture::Llama,
        "mistral" => Architecture::Mistral,
        "qwen2" => Architecture::Qwen2,
        other => return Err(EngineError::invalid("config.architecture", format!("architecture '{other}' is not supported; use llama, mistral or qwen2"))),
    };
    let rope_scaling = match &c.rope_scaling {
        None => None,
        Some(s) if s.kind == "llama3" => Some(Llama3Scaling {
            factor: s.factor,
            low_freq_factor: s.low_freq_factor,
            high_freq_factor: s.high_freq_factor,
            original_max_positions: s.original_max_positions,
        }),
        Some(s) => return Err(EngineError::invalid("config.ropeScaling.type", format!("rope scaling '{}' is not supported; only llama3", s.kind))),
    };
    let config = ModelConfig {
        architecture,
        vocab: c.vocab as usize,
        hidden: c.hidden as usize,
        layers: c.layers as usize,
        heads: c.heads as usize,
        kv_heads: c.kv_heads as usize,
        head_dim: c.head_dim as usize,
        intermediate: c.intermediate as usize,
        rms_norm_eps: c.rms_norm_eps as f32,
        rope_theta: c.rope_theta,
        rope_scaling,
        tied_embeddings: c.tied_embeddings,
        attention_bias: c.attention_bias,
        max_positions: c.max_positions as usize,
    };
    config.validate()?;
    Ok(config)
}

/// Checks a request against a model's config as every host will (the request's fields, then
/// the planner's layout), with no weights loaded: a caller refuses what the hosts would.
#[napi]
pub fn check_request(config: ConfigSpec, spec: GenerateSpec) -> Result<()> {
    guarded("checkRequest", move || {
        let config = config_of(&config)?;
        apb_engine::check_request(&config, &request_of(&spec)?)?;
        Ok(())
    })
}

fn entries_of(specs: &[TensorSpec]) -> apb_engine::Result<Vec<TensorEntry>> {
    specs
        .iter()
        .map(|t| {
            let dtype = DType::parse_for(&t.name, &t.dtype)?;
            let whole = |x: f64, what: &str| {
                if x >= 0.0 && x.fract() == 0.0 && x < 9.0e15 {
                    Ok(x as usize)
                } else {
                    Err(EngineError::invalid(&t.name, format!("tensor {}: {what} must be a whole number of bytes, got {x}", t.name)))
                }
            };
            Ok(TensorEntry {
                name: t.name.clone(),
                file: PathBuf::from(&t.file),
                dtype,
                shape: t.shape.iter().map(|&d| d as usize).collect(),
                offset_bytes: whole(t.offset, "offset")?,
                byte_length: whole(t.byte_length, "byteLength")?,
                permute_heads: t.permute_heads.map(|n| n as usize),
            })
        })
        .collect()
}

type ProgressFn = ThreadsafeFunction<(u32, u32), (), (u32, u32), Status, false>;
type TokenFn = ThreadsafeFunction<u32, (), u32, Status, false>;
pub(crate) type PrefillFn = ThreadsafeFunction<PrefillProgress, (), PrefillProgress, Status, false>;

/// One host finished one layer of prefill (`layer` counts from 1 to `layers`).
#[napi(object)]
pub struct PrefillProgress {
    pub host: u32,
    pub hosts: u32,
    pub layer: u32,
    pub layers: u32,
}

impl From<LayerDone> for PrefillProgress {
    fn from(d: LayerDone) -> PrefillProgress {
        PrefillProgress { host: d.host as u32, hosts: d.hosts as u32, layer: d.layer as u32, layers: d.layers as u32 }
    }
}

/// A flag the caller sets to stop a load or a generation it started: the work ends at its
/// next check (each tensor while loading, each layer while generating) and the promise
/// rejects with CANCELLED. One token per call.
#[napi]
pub struct CancelToken {
    cancel: Cancel,
}

#[napi]
impl CancelToken {
    #[napi(constructor)]
    #[allow(clippy::new_without_default)] // napi constructors take no Default
    pub fn new() -> CancelToken {
        CancelToken { cancel: Cancel::new() }
    }
    #[napi]
    pub fn cancel(&self) {
        self.cancel.cancel();
    }
    #[napi(getter)]
    pub fn cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }
}

pub struct LoadTask {
    spec: Option<ModelSpec>,
    progress: Option<ProgressFn>,
    cancel: Cancel,
}

impl Task for LoadTask {
    type Output = Loaded;
    type JsValue = Engine;

    fn compute(&mut self) -> Result<Self::Output> {
        let spec = self.spec.take().ok_or_else(|| Error::from_reason("load ran twice"))?;
        let progress = self.progress.take();
        let cancel = self.cancel.clone();
        guarded("load", move || {
            cancel.check("load")?;
            let config = config_of(&spec.config)?;
            let mut tensor_files = TensorFiles::new(entries_of(&spec.tensors)?);
            let mut files = Cancellable { source: &mut tensor_files, cancel: &cancel };
            let mut report = |done: usize, total: usize| {
                if let Some(p) = &progress {
                    p.call((done as u32, total as u32), ThreadsafeFunctionCallMode::NonBlocking);
                }
            };
            match spec.backend.as_deref() {
                None | Some("cpu") => {
                    let mut model = Model::load(Cpu, config, &mut files, &mut report)?;
                    load_retaining(&mut model, &spec)?;
                    Ok(Loaded::Cpu(Box::new(model)))
                }
                Some("cuda") => {
                    let cuda = apb_cuda::Cuda::open(spec.gpu.unwrap_or(0) as usize)?;
                    cuda.check_fits(&config, weight_elements(&spec))?;
                    let mut model = Model::load(cuda, config, &mut files, &mut report)?;
                    load_retaining(&mut model, &spec)?;
                    Ok(Loaded::Cuda(Box::new(model)))
                }
                Some(other) => Err(EngineError::invalid("backend", format!("backend '{other}' is not one of: {}", backends().join(", ")))),
            }
        })
    }

    fn resolve(&mut self, _env: Env, model: Loaded) -> Result<Engine> {
        Ok(Engine { backend: model.backend_name(), model: Mutex::new(Some(Arc::new(model))) })
    }
}

fn load_retaining<B: apb_engine::backend::Backend>(model: &mut Model<B>, spec: &ModelSpec) -> apb_engine::Result<()> {
    match &spec.retaining {
        Some(retaining) => model.load_retaining_heads(entries_of(retaining)?),
        None => Ok(()),
    }
}

/// The values of every weight tensor the spec lists (the retaining heads' included).
fn weight_elements(spec: &ModelSpec) -> f64 {
    spec.tensors.iter().chain(spec.retaining.iter().flatten()).map(|t| t.shape.iter().map(|&d| d as f64).product::<f64>()).sum()
}

#[napi(object)]
pub struct GpuMemory {
    pub in_use_bytes: f64,
    pub peak_bytes: f64,
    /// What can still be allocated: the device's free memory and the pool's idle memory.
    pub free_bytes: f64,
    pub total_bytes: f64,
}

/// A model on one of the backends.
pub enum Loaded {
    Cpu(Box<Model<Cpu>>),
    Cuda(Box<Model<apb_cuda::Cuda>>),
}

impl Loaded {
    fn generate(&self, r: &Request, on_token: &(dyn Fn(u32) -> bool + Sync), hooks: Hooks) -> apb_engine::Result<apb_engine::Output> {
        match self {
            Loaded::Cpu(m) => apb_engine::generate_controlled(m, r, on_token, Transfer::Handoff, hooks),
            Loaded::Cuda(m) => apb_engine::generate_controlled(m, r, on_token, Transfer::Handoff, hooks),
        }
    }

    fn backend_name(&self) -> &'static str {
        use apb_engine::backend::Backend;
        match self {
            Loaded::Cpu(m) => m.backend.name(),
            Loaded::Cuda(m) => m.backend.name(),
        }
    }
}

/// Drops one holder of a model. The last one also gives its GPU memory back: CUDA buffers are
/// freed stream-ordered into the device's memory pool, which keeps them for the next
/// allocation, so without the trim a disposed model's memory stayed taken (as the device's
/// free memory shows).
fn release(model: Arc<Loaded>) {
    let Some(loaded) = Arc::into_inner(model) else { return };
    match loaded {
        Loaded::Cuda(m) => {
            let Model { backend, config: _, weights, inv_freq: _ } = *m;
            drop(weights);
            // The pool keeps freed memory (Gpu::keep_freed_memory): wait for the frees, then
            // hand it back. A failure means the device is already lost; the weights are
            // dropped either way.
            let _ = backend.gpu.trim_pool();
        }
        Loaded::Cpu(m) => drop(m),
    }
}

#[napi(object)]
pub struct GenerateSpec {
    pub context: Vec<u32>,
    pub prefix_tokens: u32,
    pub query: Vec<u32>,
    pub strategy: String,
    pub hosts: u32,
    pub anchor_tokens: Option<u32>,
    pub passing_tokens: Option<u32>,
    pub balanced: Option<bool>,
    pub scorer: Option<String>,
    pub max_new_tokens: u32,
    pub stop_tokens: Vec<u32>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub seed: Option<u32>,
}

#[napi(object)]
#[derive(Clone)]
pub struct HostTiming {
    pub host: u32,
    /// Milliseconds per phase: embed, qkv, scoring, attention, ffn, comm, wait, query, decode.
    pub phases_ms: std::collections::HashMap<String, f64>,
    pub prefill_ms: f64,
    pub prefill_rows: u32,
}

#[napi(object)]
pub struct GenerateResult {
    pub tokens: Vec<u32>,
    pub first_logits: Float32Array,
    pub hosts: Vec<HostTiming>,
    pub anchor_tokens: u32,
    pub passing_tokens: u32,
    pub block_tokens: u32,
    pub prefill_wall_ms: f64,
    /// From the generate() call to the first token chosen (to the first-token logits when
    /// maxNewTokens is 0), waiting for a thread of the pool included.
    pub first_token_wall_ms: f64,
    pub total_wall_ms: f64,
}

pub(crate) fn request_of(s: &GenerateSpec) -> apb_engine::Result<Request> {
    let strategy = Strategy::from_name(&s.strategy)
        .ok_or_else(|| EngineError::invalid("strategy", format!("strategy '{}' is not one of full, apb, star, ring, ring-zigzag, ulysses", s.strategy)))?;
    let scorer = match s.scorer.as_deref() {
        None | Some("query") => Scorer::Query,
        Some("retaining-heads") => Scorer::RetainingHeads,
        Some(other) => return Err(EngineError::invalid("scorer", format!("scorer '{other}' is not one of query, retaining-heads"))),
    };
    let temperature = s.temperature.unwrap_or(0.0);
    let top_p = s.top_p.unwrap_or(1.0);
    let valid = temperature.is_finite() && temperature >= 0.0 && top_p > 0.0 && top_p <= 1.0;
    if !valid {
        return Err(EngineError::invalid("temperature", "temperature must be >= 0 and topP in (0, 1]"));
    }
    Ok(Request {
        context: s.context.clone(),
        prefix_tokens: s.prefix_tokens as usize,
        query: s.query.clone(),
        strategy,
        hosts: s.hosts as usize,
        anchor_tokens: s.anchor_tokens.map(|x| x as usize),
        passing_tokens: s.passing_tokens.map(|x| x as usize),
        balanced: s.balanced,
        scorer,
        max_new_tokens: s.max_new_tokens as usize,
        stop_tokens: s.stop_tokens.clone(),
        sampling: Sampling { temperature: temperature as f32, top_p: top_p as f32, seed: s.seed.unwrap_or(0) as u64 },
    })
}

pub struct GenerateTask {
    /// Taken when the task is dropped, so the last holder of a disposed model frees it (`release`).
    model: Option<Arc<Loaded>>,
    spec: GenerateSpec,
    on_token: Option<TokenFn>,
    on_progress: Option<PrefillFn>,
    cancel: Cancel,
    /// When JS made the call: the task may wait for a thread of libuv's pool.
    called: Instant,
}

impl Drop for GenerateTask {
    fn drop(&mut self) {
        if let Some(model) = self.model.take() {
            release(model);
        }
    }
}

impl Task for GenerateTask {
    type Output = apb_engine::Output;
    type JsValue = GenerateResult;

    fn compute(&mut self) -> Result<Self::Output> {
        let model = self.model.clone();
        let on_token = self.on_token.take();
        let on_progress = self.on_progress.take();
        let (spec, cancel, called) = (&self.spec, &self.cancel, self.called);
        guarded("generate", move || {
            let model = model.ok_or_else(|| EngineError::new(code::INTERNAL, "model", "the generation's model was released before it ran"))?;
            let queued_ms = called.elapsed().as_secs_f64() * 1e3;
            let request = request_of(spec)?;
            let notify = |token: u32| {
                if let Some(f) = &on_token {
                    f.call(token, ThreadsafeFunctionCallMode::NonBlocking);
                }
                true
            };
            let report = |d: LayerDone| {
                if let Some(f) = &on_progress {
                    f.call(PrefillProgress::from(d), ThreadsafeFunctionCallMode::NonBlocking);
                }
            };
            let hooks = Hooks { cancel: Some(cancel), on_layer: on_progress.as_ref().map(|_| &report as &(dyn Fn(LayerDone) + Sync)) };
            let mut out = model.generate(&request, &notify, hooks)?;
            out.first_token_wall_ms += queued_ms;
            out.total_wall_ms += queued_ms;
            Ok(out)
        })
    }

    fn resolve(&mut self, _env: Env, out: apb_engine::Output) -> Result<GenerateResult> {
        let hosts = out.hosts.iter().map(host_timing).collect();
        Ok(GenerateResult {
            tokens: out.tokens,
            first_logits: Float32Array::new(out.first_logits),
            hosts,
            anchor_tokens: out.anchor_tokens as u32,
            passing_tokens: out.passing_tokens as u32,
            block_tokens: out.block_tokens as u32,
            prefill_wall_ms: out.prefill_wall_ms,
            first_token_wall_ms: out.first_token_wall_ms,
            total_wall_ms: out.total_wall_ms,
        })
    }
}

pub(crate) fn host_timing(h: &apb_engine::timing::HostTimings) -> HostTiming {
    HostTiming {
        host: h.host as u32,
        phases_ms: PHASES.iter().zip(h.ms.iter()).map(|(p, ms)| (p.to_string(), *ms)).collect(),
        prefill_ms: h.prefill_ms(),
        prefill_rows: h.prefill_rows as u32,
    }
}

/// A loaded model.
#[napi]
pub struct Engine {
    /// None once disposed. A call takes its own Arc, so a generation already running keeps
    /// the weights until it ends, and dispose frees them then.
    pub(crate) model: Mutex<Option<Arc<Loaded>>>,
    backend: &'static str,
}

impl Engine {
    /// The model, or DISPOSED once `dispose` was called.
    pub(crate) fn loaded(&self) -> apb_engine::Result<Arc<Loaded>> {
        // A poisoned lock only means a panic elsewhere while it was held; the Option is intact.
        let held = self.model.lock().unwrap_or_else(|p| p.into_inner());
        held.clone().ok_or_else(|| {
            EngineError::new(code::DISPOSED, "model", "this model was disposed and its weights freed; load the model again (loadModel) to use it")
        })
    }
}

#[napi]
impl Engine {
    /// Loads a model; `onProgress(done, total)` is called as weights are read. Setting
    /// `cancel` stops the load before its next tensor (the promise rejects with CANCELLED).
    #[napi(ts_return_type = "Promise<Engine>")]
    #[allow(clippy::type_complexity)] // spelled out so napi's typings show the callback's arguments
    pub fn load(
        spec: ModelSpec,
        on_progress: Option<ThreadsafeFunction<(u32, u32), (), (u32, u32), Status, false>>,
        cancel: Option<&CancelToken>,
    ) -> AsyncTask<LoadTask> {
        AsyncTask::new(LoadTask { spec: Some(spec), progress: on_progress, cancel: cancel.map(|c| c.cancel.clone()).unwrap_or_default() })
    }

    /// Prefills with the chosen strategy, runs the query, and generates; `onToken(id)` sees
    /// each token as it is chosen, `onProgress` each host finishing each layer of prefill.
    /// Setting `cancel` stops every host within one layer (the promise rejects with CANCELLED).
    #[napi(ts_return_type = "Promise<GenerateResult>")]
    #[allow(clippy::type_complexity)]
    pub fn generate(
        &self,
        spec: GenerateSpec,
        on_token: Option<ThreadsafeFunction<u32, (), u32, Status, false>>,
        on_progress: Option<ThreadsafeFunction<PrefillProgress, (), PrefillProgress, Status, false>>,
        cancel: Option<&CancelToken>,
    ) -> Result<AsyncTask<GenerateTask>> {
        let model = self.loaded().map_err(to_js)?;
        let cancel = cancel.map(|c| c.cancel.clone()).unwrap_or_default();
        Ok(AsyncTask::new(GenerateTask { model: Some(model), spec, on_token, on_progress, cancel, called: Instant::now() }))
    }

    /// Frees the weights: at once, or when the generation now running ends. Later calls
    /// fail with DISPOSED. Calling it again does nothing.
    #[napi]
    pub fn dispose(&self) {
        let taken = self.model.lock().unwrap_or_else(|p| p.into_inner()).take();
        // The last holder frees the weights: here, or when the running generation ends.
        if let Some(model) = taken {
            release(model);
        }
    }

    /// Whether `dispose` was called.
    #[napi(getter)]
    pub fn disposed(&self) -> bool {
        self.model.lock().unwrap_or_else(|p| p.into_inner()).is_none()
    }

    /// GPU memory of a CUDA model (null on the CPU): bytes in use now and the most in use
    /// since the last call with `reset` (weights included), the bytes it can still allocate
    /// (the device's free memory plus what the pool keeps idle for the next request) and the
    /// device's total.
    #[napi]
    pub fn gpu_memory(&self, reset: Option<bool>) -> Result<Option<GpuMemory>> {
        guarded("gpuMemory", || match self.loaded()?.as_ref() {
            Loaded::Cpu(_) => Ok(None),
            Loaded::Cuda(m) => {
                let (in_use, peak) = m.backend.gpu.pool_usage(reset.unwrap_or(false))?;
                let (_, total) = m.backend.memory()?;
                let free = m.backend.gpu.available_bytes()?;
                Ok(Some(GpuMemory { in_use_bytes: in_use as f64, peak_bytes: peak as f64, free_bytes: free as f64, total_bytes: total as f64 }))
            }
        })
    }

    /// "cpu" or "cuda" (still known after dispose).
    #[napi(getter)]
    pub fn backend(&self) -> String {
        self.backend.to_string()
    }
}

/// Backends this build of the addon can run ("cuda" when it carries the kernels; whether a
/// GPU is present is another matter: `apb doctor` says).
#[napi]
pub fn backends() -> Vec<String> {
    let mut out = vec!["cpu".to_string()];
    if apb_cuda::kernels_built() {
        out.push("cuda".to_string());
    }
    out
}

pub mod calibrate;
pub mod doctor;
pub mod hosts;
mod memory;
pub mod testing;

#[napi_derive::module_init]
fn init() {
    memory::return_large_frees_to_os();
}
