//! The planner's input: what the user asks for, checked field by field. Every bound lives
//! here, and every error names the field, the allowed range and what was found.

use crate::error::{code, PlanError, PlanResult};
use crate::json::Json;

/// Largest token count we accept: lengths must fit in a signed 32-bit integer, which is
/// what kernels and the wasm ABI index with.
pub const MAX_TOKENS: u64 = 2_147_483_647;
pub const MAX_HOSTS: u64 = 4096;
/// Granule of the paper's defaults: block, anchor and passing lengths are multiples of it.
pub const GRANULE: u64 = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    Apb,
    Star,
    Ring,
    RingZigzag,
    Ulysses,
    Full,
}

impl Strategy {
    pub const ALL: [Strategy; 6] =
        [Strategy::Apb, Strategy::Star, Strategy::Ring, Strategy::RingZigzag, Strategy::Ulysses, Strategy::Full];

    pub fn name(self) -> &'static str {
        match self {
            Strategy::Apb => "apb",
            Strategy::Star => "star",
            Strategy::Ring => "ring",
            Strategy::RingZigzag => "ring-zigzag",
            Strategy::Ulysses => "ulysses",
            Strategy::Full => "full",
        }
    }
    pub fn from_name(s: &str) -> Option<Strategy> {
        Strategy::ALL.iter().copied().find(|x| x.name() == s)
    }
    /// Strategies whose hosts prepend an anchor block.
    pub fn has_anchor(self) -> bool {
        matches!(self, Strategy::Apb | Strategy::Star)
    }
}

/// How each host picks its passing block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scorer {
    /// Training-free: attention that local keys get from the embedded query's rows.
    Query,
    /// Locret's trained per-layer retaining heads (fc1 -> hidden -> fc2).
    RetainingHeads,
}

impl Scorer {
    pub fn name(self) -> &'static str {
        match self {
            Scorer::Query => "query",
            Scorer::RetainingHeads => "retaining-heads",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelShape {
    pub layers: u64,
    pub hidden: u64,
    pub heads: u64,
    pub kv_heads: u64,
    pub head_dim: u64,
    pub intermediate: u64,
    pub vocab: u64,
    pub bytes_per_weight: f64,
    pub tied_embeddings: bool,
    /// Hidden width of a retaining head's fc1 (Locret uses 1024).
    pub retaining_hidden: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Hardware {
    pub matmul_tflops: f64,
    pub attention_tflops: f64,
    pub hbm_gbs: f64,
    pub link_gbs: f64,
    pub link_latency_us: f64,
    pub memory_gib: f64,
    /// How the attention kernel's blocks fill this device, where the profile says: then
    /// attention is timed block by block (`kernel.rs`), else as FLOPs at `attention_tflops`.
    pub attention_blocks: Option<AttentionBlocks>,
}

/// The device's multiprocessors (blocks that run at once) and the fixed time a block of
/// query rows costs beside its key tiles.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttentionBlocks {
    pub multiprocessors: u64,
    pub block_us: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlanInput {
    pub context_tokens: u64,
    pub query_tokens: u64,
    /// BOS/system-prompt tokens that stay ahead of the embedded query in the anchor.
    pub prefix_tokens: u64,
    pub hosts: u64,
    pub strategy: Strategy,
    pub anchor_tokens: Option<u64>,
    pub passing_tokens: Option<u64>,
    /// Balanced block sizes (`balance.rs`): None means the default, which `balances` gives.
    pub balanced: Option<bool>,
    /// Whether the anchor carries the query (APB: yes; StarAttn: no).
    pub query_in_anchor: bool,
    pub scorer: Scorer,
    pub kv_bytes: f64,
    pub activation_bytes: f64,
    pub model: ModelShape,
    pub hardware: Hardware,
}

impl PlanInput {
    /// Whether blocks get balanced sizes. By default apb's do on more than one host: with even
    /// blocks the last host, which attends to the most passing keys, holds every layer up, and
    /// balanced blocks kept APB's answers in `apb eval` (docs/PLANNER.md); `balanced: false`
    /// asks for the paper's even split. Star keeps StarAttention's even split unless asked:
    /// it is the peer as published, and its first block is every host's anchor.
    pub fn balances(&self) -> bool {
        self.balanced.unwrap_or(self.strategy == Strategy::Apb && self.hosts > 1)
    }
}

/// Reads the fields of one JSON object, remembering which were used so unknown ones
/// (usually typos) are reported instead of silently ignored.
pub struct Fields<'a> {
    path: String,
    fields: &'a [(crate::json::Key, Json)],
    used: Vec<&'static str>,
}

impl<'a> Fields<'a> {
    pub fn new(v: &'a Json, path: &str) -> PlanResult<Fields<'a>> {
        match v {
            Json::Obj(fields) => Ok(Fields { path: path.to_string(), fields, used: Vec::new() }),
            other => Err(PlanError::new(
                code::WRONG_TYPE,
                path,
                format!("{} must be an object, got {}", shown(path), other.type_name()),
            )),
        }
    }

    fn field_path(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.path)
        }
    }

    fn raw(&mut self, name: &'static str) -> Option<&'a Json> {
        self.used.push(name);
        let fields: &'a [(crate::json::Key, Json)] = self.fields;
        fields.iter().find(|(k, _)| k == name).map(|(_, v)| v).filter(|v| **v != Json::Null)
    }

    fn missing(&self, name: &str, what: &str) -> PlanError {
        let p = self.field_path(name);
        PlanError::new(code::MISSING_FIELD, &p, format!("{p} is required: give {what}"))
    }

    pub fn opt_int(&mut self, name: &'static str, min: u64, max: u64) -> PlanResult<Option<u64>> {
        let p = self.field_path(name);
        match self.raw(name) {
            None => Ok(None),
            Some(Json::Num(n)) => {
                let n = *n;
                if n != n.trunc() {
                    return Err(PlanError::new(code::WRONG_TYPE, &p, format!("{p} must be a whole number, got {n}")));
                }
                if n < min as f64 || n > max as f64 {
                    return Err(PlanError::new(
                        code::OUT_OF_RANGE,
                        &p,
                        format!("{p} must be between {min} and {max}, got {n}"),
                    ));
                }
                Ok(Some(n as u64))
            }
            Some(other) => Err(PlanError::new(
                code::WRONG_TYPE,
                &p,
                format!("{p} must be a whole number between {min} and {max}, got {}", other.type_name()),
            )),
        }
    }

    pub fn int(&mut self, name: &'static str, min: u64, max: u64) -> PlanResult<u64> {
        match self.opt_int(name, min, max)? {
            Some(v) => Ok(v),
            None => Err(self.missing(name, &format!("a whole number between {min} and {max}"))),
        }
    }

    /// A positive finite number in (0, max].
    pub fn opt_positive(&mut self, name: &'static str, max: f64) -> PlanResult<Option<f64>> {
        let p = self.field_path(name);
        match self.raw(name) {
            None => Ok(None),
            Some(Json::Num(n)) if *n > 0.0 && *n <= max => Ok(Some(*n)),
            Some(Json::Num(n)) => Err(PlanError::new(
                code::OUT_OF_RANGE,
                &p,
                format!("{p} must be greater than 0 and at most {max}, got {n}"),
            )),
            Some(other) => Err(PlanError::new(
                code::WRONG_TYPE,
                &p,
                format!("{p} must be a number in (0, {max}], got {}", other.type_name()),
            )),
        }
    }

    pub fn positive(&mut self, name: &'static str, max: f64) -> PlanResult<f64> {
        match self.opt_positive(name, max)? {
            Some(v) => Ok(v),
            None => Err(self.missing(name, &format!("a number in (0, {max}]"))),
        }
    }

    pub fn opt_bool(&mut self, name: &'static str) -> PlanResult<Option<bool>> {
        let p = self.field_path(name);
        match self.raw(name) {
            None => Ok(None),
            Some(Json::Bool(b)) => Ok(Some(*b)),
            Some(other) => {
                Err(PlanError::new(code::WRONG_TYPE, &p, format!("{p} must be true or false, got {}", other.type_name())))
            }
        }
    }

    pub fn opt_choice(&mut self, name: &'static str, allowed: &[&str]) -> PlanResult<Option<String>> {
        let p = self.field_path(name);
        let list = allowed.join(", ");
        match self.raw(name) {
            None => Ok(None),
            Some(Json::Str(s)) if allowed.contains(&s.as_ref()) => Ok(Some(s.to_string())),
            Some(Json::Str(s)) => {
                Err(PlanError::new(code::OUT_OF_RANGE, &p, format!("{p} must be one of {list}, got '{s}'")))
            }
            Some(other) => Err(PlanError::new(
                code::WRONG_TYPE,
                &p,
                format!("{p} must be one of {list}, got {}", other.type_name()),
            )),
        }
    }

    pub fn opt_choices(&mut self, name: &'static str, allowed: &[&str]) -> PlanResult<Option<Vec<String>>> {
        let p = self.field_path(name);
        let list = allowed.join(", ");
        match self.raw(name) {
            None => Ok(None),
            Some(Json::Arr(items)) if !items.is_empty() => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Json::Str(s) if allowed.contains(&s.as_ref()) => out.push(s.to_string()),
                        _ => {
                            return Err(PlanError::new(
                                code::OUT_OF_RANGE,
                                &format!("{p}[{i}]"),
                                format!("{p}[{i}] must be one of {list}"),
                            ))
                        }
                    }
                }
                Ok(Some(out))
            }
            Some(_) => Err(PlanError::new(
                code::WRONG_TYPE,
                &p,
                format!("{p} must be a non-empty array of: {list}"),
            )),
        }
    }

    pub fn object(&mut self, name: &'static str) -> PlanResult<&'a Json> {
        match self.raw(name) {
            Some(v) => Ok(v),
            None => Err(self.missing(name, "an object")),
        }
    }

    /// Fails on any field that no reader asked for.
    pub fn finish(self) -> PlanResult<()> {
        for (k, _) in self.fields.iter() {
            if !self.used.iter().any(|u| u == k) {
                let p = self.field_path(k);
                let mut allowed = self.used.clone();
                allowed.sort_unstable();
                allowed.dedup();
                return Err(PlanError::new(
                    code::UNKNOWN_FIELD,
                    &p,
                    format!("{p} is not a known field; known fields here: {}", allowed.join(", ")),
                ));
            }
        }
        Ok(())
    }
}

fn shown(path: &str) -> &str {
    if path.is_empty() {
        "the input"
    } else {
        path
    }
}

const STRATEGY_NAMES: [&str; 6] = ["apb", "star", "ring", "ring-zigzag", "ulysses", "full"];

pub fn parse_model(v: &Json, path: &str) -> PlanResult<ModelShape> {
    let mut f = Fields::new(v, path)?;
    let model = ModelShape {
        layers: f.int("layers", 1, 1024)?,
        hidden: f.int("hidden", 1, 1_048_576)?,
        heads: f.int("heads", 1, 1024)?,
        kv_heads: f.int("kvHeads", 1, 1024)?,
        head_dim: f.int("headDim", 1, 1024)?,
        intermediate: f.int("intermediate", 1, 16_777_216)?,
        vocab: f.int("vocab", 1, 16_777_216)?,
        bytes_per_weight: f.positive("bytesPerWeight", 8.0)?,
        tied_embeddings: f.opt_bool("tiedEmbeddings")?.unwrap_or(false),
        retaining_hidden: f.opt_int("retainingHidden", 1, 65_536)?.unwrap_or(1024),
    };
    f.finish()?;
    if model.heads % model.kv_heads != 0 {
        let p = format!("{path}.kvHeads");
        return Err(PlanError::new(
            code::OUT_OF_RANGE,
            &p,
            format!("{p} must divide {path}.heads ({}), got {}", model.heads, model.kv_heads),
        ));
    }
    Ok(model)
}

pub fn parse_hardware(v: &Json, path: &str) -> PlanResult<Hardware> {
    let mut f = Fields::new(v, path)?;
    let hw = Hardware {
        matmul_tflops: f.positive("matmulTflops", 100_000.0)?,
        attention_tflops: f.positive("attentionTflops", 100_000.0)?,
        hbm_gbs: f.positive("hbmGBs", 1_000_000.0)?,
        link_gbs: f.positive("linkGBs", 1_000_000.0)?,
        link_latency_us: f.positive("linkLatencyUs", 1_000_000.0)?,
        memory_gib: f.positive("memoryGiB", 1_048_576.0)?,
        attention_blocks: None,
    };
    let multiprocessors = f.opt_int("multiprocessors", 1, 100_000)?;
    let block_us = f.opt_positive("attentionBlockUs", 1_000_000.0)?;
    let hw = match (multiprocessors, block_us) {
        (Some(multiprocessors), Some(block_us)) => Hardware { attention_blocks: Some(AttentionBlocks { multiprocessors, block_us }), ..hw },
        (None, None) => hw,
        (given, _) => {
            let (missing, other) = if given.is_some() { ("attentionBlockUs", "multiprocessors") } else { ("multiprocessors", "attentionBlockUs") };
            let p = if path.is_empty() { missing.to_string() } else { format!("{path}.{missing}") };
            // OUT_OF_RANGE, as the TypeScript schema's check of the same pair says it.
            return Err(PlanError::new(
                code::OUT_OF_RANGE,
                &p,
                format!("{p} goes with {other}: give both (from apb calibrate or a preset) or neither"),
            ));
        }
    };
    f.finish()?;
    Ok(hw)
}

/// Reads the plan fields from `f`; callers with extra fields (recommend, compare) read
/// theirs from the same `Fields` before `finish`.
pub fn parse_plan_fields(f: &mut Fields) -> PlanResult<PlanInput> {
    let context_tokens = f.int("contextTokens", 1, MAX_TOKENS)?;
    let strategy = match f.opt_choice("strategy", &STRATEGY_NAMES)? {
        Some(s) => Strategy::from_name(&s).unwrap_or(Strategy::Apb),
        None => Strategy::Apb,
    };
    let scorer = match f.opt_choice("scorer", &["query", "retaining-heads"])?.as_deref() {
        Some("retaining-heads") => Scorer::RetainingHeads,
        _ => Scorer::Query,
    };
    let input = PlanInput {
        context_tokens,
        query_tokens: f.opt_int("queryTokens", 0, MAX_TOKENS)?.unwrap_or(128),
        prefix_tokens: f.opt_int("prefixTokens", 0, MAX_TOKENS)?.unwrap_or(1),
        hosts: f.opt_int("hosts", 1, MAX_HOSTS)?.unwrap_or(1),
        strategy,
        anchor_tokens: f.opt_int("anchorTokens", 0, MAX_TOKENS)?,
        passing_tokens: f.opt_int("passingTokens", 0, MAX_TOKENS)?,
        balanced: f.opt_bool("balanced")?,
        query_in_anchor: f.opt_bool("queryInAnchor")?.unwrap_or(strategy != Strategy::Star),
        scorer,
        kv_bytes: f.opt_positive("kvBytes", 8.0)?.unwrap_or(2.0),
        activation_bytes: f.opt_positive("activationBytes", 8.0)?.unwrap_or(2.0),
        model: parse_model(f.object("model")?, "model")?,
        hardware: parse_hardware(f.object("hardware")?, "hardware")?,
    };
    Ok(input)
}

pub fn parse_plan_input(v: &Json) -> PlanResult<PlanInput> {
    let mut f = Fields::new(v, "")?;
    let input = parse_plan_fields(&mut f)?;
    f.finish()?;
    Ok(input)
}

pub fn strategy_names() -> &'static [&'static str] {
    &STRATEGY_NAMES
}
