//! Generation end to end: plan the layout, run every host's prefill, the query pass and
//! decoding, each emulated host on its own thread.

use std::time::Instant;

use apb_plan::input::{AttentionBlocks, Hardware, PlanInput, Scorer, Strategy};

use crate::backend::Backend;
use crate::config::ModelConfig;
use crate::comm::{Comm, InProcess, Transfer};
use crate::control::{Hooks, LayerDone};
use crate::decode::decode;
use crate::error::{code, EngineError, Result};
use crate::host::host_rows;
use crate::model::Model;
use crate::prefill::{prefill, HostPrefill, KvCache};
use crate::sample::{Sampler, Sampling};
use crate::timing::HostTimings;

#[derive(Debug, Clone)]
pub struct Request {
    /// BOS/system prefix followed by the document.
    pub context: Vec<u32>,
    /// Tokens of `context` that form the BOS/system prefix (kept ahead of the query in the anchor).
    pub prefix_tokens: usize,
    /// The question and whatever the chat template puts after it.
    pub query: Vec<u32>,
    pub strategy: Strategy,
    pub hosts: usize,
    pub anchor_tokens: Option<usize>,
    pub passing_tokens: Option<usize>,
    /// Balanced block sizes; None: the planner's default (`PlanInput::balances`).
    pub balanced: Option<bool>,
    pub scorer: Scorer,
    pub max_new_tokens: usize,
    pub stop_tokens: Vec<u32>,
    pub sampling: Sampling,
}

#[derive(Debug, Clone)]
pub struct Output {
    pub tokens: Vec<u32>,
    /// Logits after the query pass: the distribution of the first generated token.
    pub first_logits: Vec<f32>,
    pub hosts: Vec<HostTimings>,
    pub anchor_tokens: usize,
    pub passing_tokens: usize,
    pub block_tokens: usize,
    pub prefill_wall_ms: f64,
    /// From the call to the first generated token being chosen (to the first-token logits
    /// when no token is generated): for emulated hosts, all hosts' prefill in turn and the query.
    pub first_token_wall_ms: f64,
    pub total_wall_ms: f64,
}

/// The hardware profile the engine plans with. It uses only the layout, and a layout depends
/// on the profile only through balanced block sizes, which follow the ratio of GEMM to
/// attention to memory rates and on how attention blocks fill the device: these are a Hopper
/// GPU's (the `h200-nvlink` preset's), the same on every host so all hosts cut the same
/// blocks. Memory is not checked here.
const LAYOUT_PROFILE: Hardware = Hardware {
    matmul_tflops: 650.0,
    attention_tflops: 560.0,
    hbm_gbs: 4300.0,
    link_gbs: 360.0,
    link_latency_us: 3.0,
    memory_gib: 1024.0,
    attention_blocks: Some(AttentionBlocks { multiprocessors: 132, block_us: 7.0 }),
};

pub fn plan_input(config: &ModelConfig, r: &Request) -> PlanInput {
    PlanInput {
        context_tokens: r.context.len() as u64,
        query_tokens: r.query.len() as u64,
        prefix_tokens: r.prefix_tokens as u64,
        hosts: r.hosts as u64,
        strategy: r.strategy,
        anchor_tokens: r.anchor_tokens.map(|x| x as u64),
        passing_tokens: r.passing_tokens.map(|x| x as u64),
        balanced: r.balanced,
        query_in_anchor: r.strategy != Strategy::Star,
        scorer: r.scorer,
        kv_bytes: 4.0,
        activation_bytes: 4.0,
        model: config.plan_shape(),
        hardware: LAYOUT_PROFILE,
    }
}

/// What can be told from the config alone; `has_retaining` is None where no weights are loaded
/// (a caller checking a request before it goes to the hosts, which check the rest).
fn validate(config: &ModelConfig, has_retaining: Option<bool>, r: &Request) -> Result<()> {
    if r.context.is_empty() {
        return Err(EngineError::invalid("context", "the context is empty: give a document"));
    }
    if r.query.is_empty() {
        return Err(EngineError::invalid("query", "the query is empty: the first token is generated after it"));
    }
    if r.prefix_tokens > r.context.len() {
        return Err(EngineError::invalid("prefixTokens", format!("prefixTokens ({}) exceeds the context ({})", r.prefix_tokens, r.context.len())));
    }
    if r.hosts == 0 {
        return Err(EngineError::invalid("hosts", "hosts must be at least 1"));
    }
    let vocab = config.vocab as u32;
    if let Some(bad) = r.context.iter().chain(&r.query).find(|&&t| t >= vocab) {
        return Err(EngineError::invalid("tokens", format!("token id {bad} is outside the vocabulary of {vocab}")));
    }
    if r.scorer == Scorer::RetainingHeads && has_retaining == Some(false) {
        return Err(EngineError::invalid("scorer", "scorer 'retaining-heads' needs a retaining-heads file; load one or use the query scorer"));
    }
    let total = r.context.len() + r.query.len() + r.max_new_tokens;
    if total > u32::MAX as usize {
        return Err(EngineError::invalid("context", "the prompt and generation must stay below 2^32 positions"));
    }
    Ok(())
}

/// The request checked and laid out: every host, emulated or real, plans from this.
fn plan_request<B: Backend>(m: &Model<B>, r: &Request) -> Result<apb_plan::plan::Plan> {
    validate(&m.config, Some(m.weights.retaining.is_some()), r)?;
    Ok(apb_plan::plan(&plan_input(&m.config, r))?)
}

/// The request checked and laid out from the model's config alone, as every host will plan it:
/// a caller (a server, a coordinator's client) refuses what the hosts would refuse before any
/// of them starts.
pub fn check_request(config: &ModelConfig, r: &Request) -> Result<apb_plan::plan::Plan> {
    validate(config, None, r)?;
    Ok(apb_plan::plan(&plan_input(config, r))?)
}

/// Device memory a request needs beyond the weights, in values, for the hosts that live on
/// this device (all of them where hosts are emulated on one device; one on a real host):
/// their KV caches (with the spare rows generation appends into) and the largest one's layer
/// activations (hidden states, q/k/v, attention output, the MLP's gate, up and product).
fn working_values(m: &Model<impl Backend>, r: &Request, hosts: &[apb_plan::layout::HostLayout]) -> u64 {
    let c = &m.config;
    let rows = |h: &apb_plan::layout::HostLayout| h.anchor.tokens + h.local_tokens + r.query.len() as u64;
    let kv: u64 = hosts.iter().map(|h| rows(h) * 2 * c.kv_width() as u64 * c.layers as u64).sum();
    // The appending cache's spare rows for generation (every host's rows, the most it can hold).
    let all_rows: u64 = hosts.iter().map(rows).sum();
    let spare = crate::kv_cache::spare_rows(all_rows as usize, r.max_new_tokens) as u64 * 2 * c.kv_width() as u64 * c.layers as u64;
    let kv = kv + spare;
    let per_row = (3 * c.hidden + 2 * c.q_width() + 2 * c.kv_width() + 3 * c.intermediate) as u64;
    let largest = hosts.iter().map(rows).max().unwrap_or(0);
    kv + largest * per_row + ulysses_values(m, r, hosts)
}

/// What Ulysses holds beyond the local activations: the parts of the all-to-alls in flight
/// (every host on this device's rows of q, k and v), and one host's whole-sequence q, k, v
/// and attention output for its heads.
fn ulysses_values(m: &Model<impl Backend>, r: &Request, hosts: &[apb_plan::layout::HostLayout]) -> u64 {
    if r.strategy != Strategy::Ulysses {
        return 0;
    }
    let c = &m.config;
    let in_flight: u64 = hosts.iter().map(|h| h.local_tokens * (c.q_width() + 2 * c.kv_width()) as u64).sum();
    let heads = hosts.iter().map(|h| 2 * (h.q_heads.1 + h.kv_heads.1)).max().unwrap_or(0);
    in_flight + r.context.len() as u64 * heads * c.head_dim as u64
}

/// Refuses, before any work, a request whose working memory does not fit the device.
fn check_memory<B: Backend>(m: &Model<B>, r: &Request, layout: &apb_plan::layout::Layout, on_device: &[apb_plan::layout::HostLayout]) -> Result<()> {
    let Some((free, bytes_per_value)) = m.backend.free_memory()? else { return Ok(()) };
    let needed = working_values(m, r, on_device) * bytes_per_value as u64;
    if needed > free {
        let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
        return Err(EngineError::new(
            code::GPU_MEMORY,
            "context",
            format!(
                "this request needs about {:.1} GiB of device memory beyond the weights (KV cache of {} tokens over {} hosts, and one host's activations) but {:.1} GiB are free; use a shorter context or more hosts",
                gib(needed),
                r.context.len() + r.query.len(),
                layout.hosts.len(),
                gib(free)
            ),
        ));
    }
    Ok(())
}

struct HostResult {
    timings: HostTimings,
    decoded: Decoded,
}

/// Generates up to `max_new_tokens`; `on_token` sees each token as it is chosen and may
/// return false to stop.
pub fn generate<B: Backend>(m: &Model<B>, r: &Request, on_token: &(dyn Fn(u32) -> bool + Sync)) -> Result<Output> {
    generate_with(m, r, on_token, Transfer::Handoff)
}

/// `generate` with emulated hosts handing blocks over as chosen (`Transfer::Bytes` makes
/// them travel through host memory, as between machines).
pub fn generate_with<B: Backend>(m: &Model<B>, r: &Request, on_token: &(dyn Fn(u32) -> bool + Sync), transfer: Transfer) -> Result<Output> {
    generate_controlled(m, r, on_token, transfer, Hooks::default())
}

/// `generate_with` under the caller's controls: `hooks.cancel` stops every host within one
/// layer (the call returns `CANCELLED`), `hooks.on_layer` hears each host finish each layer.
pub fn generate_controlled<B: Backend>(
    m: &Model<B>,
    r: &Request,
    on_token: &(dyn Fn(u32) -> bool + Sync),
    transfer: Transfer,
    hooks: Hooks,
) -> Result<Output> {
    let entered = Instant::now();
    hooks.check_cancelled("generate")?;
    let plan = plan_request(m, r)?;
    let layout = &plan.layout;
    check_memory(m, r, layout, &layout.hosts)?;
    let started = Instant::now();
    let cancel = hooks.cancel.cloned();
    let prefilled: Vec<Result<(Prefilled<B>, Vec<f32>)>> = std::thread::scope(|s| {
        let handles: Vec<_> = InProcess::group_cancellable(layout.hosts.len(), transfer, cancel.clone())
            .into_iter()
            .map(|mut comm| {
                s.spawn(move || {
                    let out = prefill_host(m, r, layout, &mut comm, started, hooks.on_layer).and_then(|mut p| {
                        let first_logits = query_pass(m, r, &mut comm, &mut p.cache, &mut p.timings)?;
                        Ok((p, first_logits))
                    });
                    if let Err(e) = &out {
                        comm.abort(&e.message);
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(EngineError::new(code::INTERNAL, "", "a host thread panicked"))))
            .collect()
    });
    // Report the host's own failure, not the others' "stopped because another host failed".
    if let Some(e) = prefilled.iter().filter_map(|x| x.as_ref().err()).min_by_key(|e| e.code == code::COMM) {
        return Err(e.clone());
    }
    let (prefilled, first_logits): (Vec<Prefilled<B>>, Vec<Vec<f32>>) = prefilled.into_iter().flatten().unzip();
    let prefill_wall_ms = prefilled.iter().map(|p| p.prefill_ms).fold(0.0, f64::max);
    let mut hosts: Vec<HostTimings> = prefilled.iter().map(|p| p.timings.clone()).collect();
    // The query pass ran on every host over its own KV, merged by LSE, as real hosts run it
    // (so each host's `query` time is what it would be on its own device). The generated
    // tokens then decode once over all hosts' KV in host order instead of taking H turns per
    // layer per token: attention of the new rows over the concatenation is what the LSE merge
    // of the hosts' partials gives (tests/tcp_hosts.rs holds real hosts, which merge, to
    // these tokens), and only the last host appended the query. That time counts as the last
    // host's `decode`.
    let mut cache = merge_caches(&m.backend, prefilled.into_iter().map(|p| p.cache).collect())?;
    let last_host = hosts.len() - 1;
    let first_logits = first_logits.into_iter().next_back().ok_or_else(|| EngineError::new(code::INTERNAL, "", "no host ran the query"))?;
    let mut single = InProcess::group_cancellable(1, Transfer::Handoff, cancel).pop().ok_or_else(|| EngineError::new(code::INTERNAL, "", "no decode group"))?;
    let decoded = generate_after(m, r, &mut single, &mut cache, &mut hosts[last_host], on_token, first_logits)?;
    let total_wall_ms = entered.elapsed().as_secs_f64() * 1e3;
    let s = &layout.settings;
    Ok(Output {
        tokens: decoded.tokens,
        first_logits: decoded.first_logits,
        hosts,
        anchor_tokens: s.anchor_tokens as usize,
        passing_tokens: s.passing_tokens as usize,
        block_tokens: s.block_tokens as usize,
        prefill_wall_ms,
        first_token_wall_ms: ms_between(entered, decoded.first_token_at),
        total_wall_ms,
    })
}

fn ms_between(from: Instant, to: Instant) -> f64 {
    to.saturating_duration_since(from).as_secs_f64() * 1e3
}

/// What one real host returns: its own tokens (every host holds the same ones), the
/// first-token logits, its timings and the layout's sizes.
#[derive(Debug, Clone)]
pub struct HostOutput {
    pub tokens: Vec<u32>,
    pub first_logits: Vec<f32>,
    pub timings: HostTimings,
    pub anchor_tokens: usize,
    pub passing_tokens: usize,
    pub block_tokens: usize,
    /// From this call's start to the end of this host's prefill.
    pub prefill_wall_ms: f64,
    /// From this call's start to the first token (as `Output::first_token_wall_ms`).
    pub first_token_wall_ms: f64,
    pub total_wall_ms: f64,
}

/// Runs this host's part of a request: the one entry point of a host that is its own
/// process. Every host plans the same layout from the same request, so nothing about the
/// layout travels between hosts; `comm` joins it to the others (TCP or NCCL). Only the
/// last host calls `on_token`.
pub fn generate_host<B: Backend, C: Comm>(m: &Model<B>, r: &Request, comm: &mut C, on_token: &(dyn Fn(u32) -> bool + Sync)) -> Result<HostOutput> {
    generate_host_reporting(m, r, comm, on_token, None)
}

/// `generate_host` that also reports each layer of this host's prefill to `on_layer` (from
/// this host's thread; it must not block), as emulated hosts do through `Hooks::on_layer`.
pub fn generate_host_reporting<B: Backend, C: Comm>(
    m: &Model<B>,
    r: &Request,
    comm: &mut C,
    on_token: &(dyn Fn(u32) -> bool + Sync),
    on_layer: Option<&(dyn Fn(LayerDone) + Sync)>,
) -> Result<HostOutput> {
    // Checks every host makes alike, on the same request, before touching the data plane:
    // each refuses on its own and the group stays usable for the next request.
    let plan = plan_request(m, r)?;
    let layout = &plan.layout;
    if layout.hosts.len() != comm.size() {
        return Err(EngineError::invalid(
            "hosts",
            format!("the request plans {} hosts but this group has {}; send it with hosts = {}", layout.hosts.len(), comm.size(), comm.size()),
        ));
    }
    check_memory(m, r, layout, &layout.hosts[comm.rank()..=comm.rank()])?;
    let started = Instant::now();
    let (host, prefill_wall_ms) = match run_host(m, r, layout, comm, started, on_token, on_layer) {
        Ok(x) => x,
        Err(e) => {
            // Tell the others (where the transport can) so none waits on this host at a collective.
            if e.code != code::COMM {
                comm.abort(&format!("host {} failed: {}", comm.rank(), e.message));
            }
            return Err(e);
        }
    };
    let s = &layout.settings;
    Ok(HostOutput {
        tokens: host.decoded.tokens,
        first_logits: host.decoded.first_logits,
        timings: host.timings,
        anchor_tokens: s.anchor_tokens as usize,
        passing_tokens: s.passing_tokens as usize,
        block_tokens: s.block_tokens as usize,
        prefill_wall_ms,
        first_token_wall_ms: ms_between(started, host.decoded.first_token_at),
        total_wall_ms: started.elapsed().as_secs_f64() * 1e3,
    })
}

/// One host's prefill: its KV cache, its timings so far and when its prefill ended.
struct Prefilled<B: Backend> {
    cache: KvCache<B>,
    timings: HostTimings,
    prefill_ms: f64,
}

fn prefill_host<B: Backend, C: Comm>(
    m: &Model<B>,
    r: &Request,
    layout: &apb_plan::layout::Layout,
    comm: &mut C,
    started: Instant,
    on_layer: Option<&(dyn Fn(LayerDone) + Sync)>,
) -> Result<Prefilled<B>> {
    let host = comm.rank();
    let rows = host_rows(&layout.hosts[host], &r.context, &r.query);
    let mut timings = HostTimings::new(host);
    let p = HostPrefill { layout, host, rows: &rows, scorer: r.scorer, on_layer };
    let cache = prefill(m, comm, &p, &mut timings)?;
    Ok(Prefilled { cache, timings, prefill_ms: started.elapsed().as_secs_f64() * 1e3 })
}

/// All hosts' caches as one, layer by layer in host order; each layer's parts are freed as
/// soon as they are joined, so the peak is one layer's KV beyond the caches themselves.
fn merge_caches<B: Backend>(b: &B, caches: Vec<KvCache<B>>) -> Result<KvCache<B>> {
    if caches.len() == 1 {
        return caches.into_iter().next().ok_or_else(|| EngineError::new(code::INTERNAL, "", "no cache"));
    }
    let layers = caches.first().map_or(0, |c| c.k.len());
    let tokens = caches.iter().map(|c| c.tokens).sum();
    let mut hosts: Vec<_> = caches.into_iter().map(|c| (c.k.into_iter(), c.v.into_iter())).collect();
    let mut merged = KvCache { k: Vec::with_capacity(layers), v: Vec::with_capacity(layers), tokens };
    for _ in 0..layers {
        let (k, v): (Vec<B::Buf>, Vec<B::Buf>) = hosts.iter_mut().filter_map(|(k, v)| Some((k.next()?, v.next()?))).unzip();
        merged.k.push(b.concat_rows(&k.iter().collect::<Vec<_>>())?);
        merged.v.push(b.concat_rows(&v.iter().collect::<Vec<_>>())?);
    }
    Ok(merged)
}

fn run_host<B: Backend, C: Comm>(
    m: &Model<B>,
    r: &Request,
    layout: &apb_plan::layout::Layout,
    comm: &mut C,
    started: Instant,
    on_token: &(dyn Fn(u32) -> bool + Sync),
    on_layer: Option<&(dyn Fn(LayerDone) + Sync)>,
) -> Result<(HostResult, f64)> {
    let Prefilled { mut cache, mut timings, prefill_ms } = prefill_host(m, r, layout, comm, started, on_layer)?;
    let decoded = decode_tokens(m, r, comm, &mut cache, &mut timings, on_token)?;
    Ok((HostResult { timings, decoded }, prefill_ms))
}

/// What decoding gives: the tokens, the first token's logits, and when the first token was
/// chosen (when the logits were ready, if none was to be generated).
struct Decoded {
    tokens: Vec<u32>,
    first_logits: Vec<f32>,
    first_token_at: Instant,
}

/// NaN or Inf logits would make the sampler choose token 0 again and again (NaN never wins
/// a comparison), which looks like an answer; refuse them instead.
fn check_logits(logits: &[f32], step: usize) -> Result<()> {
    let Some(at) = logits.iter().position(|v| !v.is_finite()) else { return Ok(()) };
    let when = if step == 0 { "after the query".to_string() } else { format!("for generated token {}", step + 1) };
    Err(EngineError::new(
        code::NUMERIC,
        "logits",
        format!(
            "the model produced a non-finite logit ({} for token id {at}) {when}: its weights or activations overflow. Check the checkpoint (a float16 model whose activations exceed 65504 needs bfloat16 or float32 weights)",
            logits[at]
        ),
    ))
}

/// The query pass and generation after prefill.
fn decode_tokens<B: Backend, C: Comm>(
    m: &Model<B>,
    r: &Request,
    comm: &mut C,
    cache: &mut KvCache<B>,
    timings: &mut HostTimings,
    on_token: &(dyn Fn(u32) -> bool + Sync),
) -> Result<Decoded> {
    let first_logits = query_pass(m, r, comm, cache, timings)?;
    generate_after(m, r, comm, cache, timings, on_token, first_logits)
}

/// The query's rows through every layer, over every host's KV (merged by LSE): the logits of
/// the first token. The last host appends the query's KV to its cache.
fn query_pass<B: Backend, C: Comm>(m: &Model<B>, r: &Request, comm: &mut C, cache: &mut KvCache<B>, timings: &mut HostTimings) -> Result<Vec<f32>> {
    let n = r.context.len() as u32;
    let positions: Vec<u32> = (n..n + r.query.len() as u32).collect();
    let logits = decode(m, comm, cache, &r.query, &positions, r.max_new_tokens, "query", timings)?;
    check_logits(&logits, 0)?;
    Ok(logits)
}

/// Generation after the query pass, from its logits: the last host chooses each token, the
/// others take it, and every host runs it through the layers.
fn generate_after<B: Backend, C: Comm>(
    m: &Model<B>,
    r: &Request,
    comm: &mut C,
    cache: &mut KvCache<B>,
    timings: &mut HostTimings,
    on_token: &(dyn Fn(u32) -> bool + Sync),
    first_logits: Vec<f32>,
) -> Result<Decoded> {
    let is_last = comm.rank() + 1 == comm.size();
    let mut logits = first_logits.clone();
    let mut first_token_at = Instant::now();
    let mut sampler = Sampler::new(r.sampling);
    let mut tokens = Vec::new();
    let mut position = (r.context.len() + r.query.len()) as u32;
    while tokens.len() < r.max_new_tokens {
        // The last host chooses; the others take its token (and whether to go on).
        let mut choice = vec![0.0f32, 0.0];
        if is_last {
            let token = sampler.next(&logits);
            if tokens.is_empty() {
                first_token_at = Instant::now();
            }
            let go_on = on_token(token) && !r.stop_tokens.contains(&token);
            choice = vec![token as f32, if go_on { 1.0 } else { 0.0 }];
        }
        if comm.size() > 1 {
            let t = Instant::now();
            choice = comm.all_gather(choice)?[comm.size() - 1].as_ref().clone();
            timings.add(crate::decode::after_prefill(comm, "decode"), t);
            if tokens.is_empty() && !is_last {
                first_token_at = Instant::now();
            }
        }
        tokens.push(choice[0] as u32);
        if choice[1] == 0.0 || tokens.len() == r.max_new_tokens {
            break;
        }
        logits = decode(m, comm, cache, &[choice[0] as u32], &[position], r.max_new_tokens - tokens.len(), "decode", timings)?;
        check_logits(&logits, tokens.len())?;
        position += 1;
    }
    Ok(Decoded { tokens, first_logits, first_token_at })
}
