//! Model weights on a backend, uploaded once. Tensor names follow transformers' Llama
//! family; where they come from (safetensors, or generated in tests) is the caller's.

use crate::backend::Backend;
use crate::config::ModelConfig;
use crate::control::Cancel;
use crate::error::Result;

pub struct LayerWeights<B: Backend> {
    pub attn_norm: B::Buf,
    pub wq: B::Buf,
    pub wk: B::Buf,
    pub wv: B::Buf,
    pub wo: B::Buf,
    pub bq: Option<B::Buf>,
    pub bk: Option<B::Buf>,
    pub bv: Option<B::Buf>,
    pub ffn_norm: B::Buf,
    /// The gate and up projections stacked, [2 * intermediate][hidden]: one GEMM makes both
    /// (wider GEMMs run nearer the GPU's rate), and `silu_mul` reads the halves in place.
    pub w_gate_up: B::Buf,
    pub w_down: B::Buf,
}

/// Locret's retaining head for one layer: fc1 over [q; k; v] (before RoPE), the model's
/// activation, fc2 to one score per KV head.
pub struct RetainingHead<B: Backend> {
    pub fc1: B::Buf,
    pub fc1_bias: Option<B::Buf>,
    pub fc2: B::Buf,
    pub fc2_bias: Option<B::Buf>,
    pub hidden: usize,
}

pub struct ModelWeights<B: Backend> {
    pub embed: B::Buf,
    pub layers: Vec<LayerWeights<B>>,
    pub final_norm: B::Buf,
    pub lm_head: B::Buf,
    pub retaining: Option<Vec<RetainingHead<B>>>,
}

/// Supplies one tensor by name and expected shape (row-major, as in checkpoints).
pub trait TensorSource {
    fn tensor(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>>;
    fn has(&self, name: &str) -> bool;
}

impl TensorSource for crate::safetensors::TensorFiles {
    fn tensor(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        self.read(name, shape)
    }
    fn has(&self, name: &str) -> bool {
        self.entry(name).is_some()
    }
}

/// A source that stops with `CANCELLED` before reading the next tensor once `cancel` is set,
/// so a load ends within one tensor of the caller's cancel.
pub struct Cancellable<'a> {
    pub source: &'a mut dyn TensorSource,
    pub cancel: &'a Cancel,
}

impl TensorSource for Cancellable<'_> {
    fn tensor(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        self.cancel.check("load")?;
        self.source.tensor(name, shape)
    }
    fn has(&self, name: &str) -> bool {
        self.source.has(name)
    }
}

/// Loads every weight, calling `progress(done, total)` after each layer.
pub fn load<B: Backend>(
    backend: &B,
    config: &ModelConfig,
    source: &mut dyn TensorSource,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ModelWeights<B>> {
    let (d, qw, kvw, f, v) = (config.hidden, config.q_width(), config.kv_width(), config.intermediate, config.vocab);
    let total = config.layers + 2;
    let embed_host = source.tensor("model.embed_tokens.weight", &[v, d])?;
    let lm_head = if config.tied_embeddings {
        backend.linear_weight(embed_host.clone(), v, d)?
    } else {
        backend.linear_weight(source.tensor("lm_head.weight", &[v, d])?, v, d)?
    };
    let embed = backend.upload(embed_host)?;
    progress(1, total);
    let mut layers = Vec::with_capacity(config.layers);
    for i in 0..config.layers {
        let p = format!("model.layers.{i}");
        let mut linear = |name: &str, outp: usize, inp: usize| -> Result<B::Buf> {
            backend.linear_weight(source.tensor(&format!("{p}.{name}.weight"), &[outp, inp])?, outp, inp)
        };
        let wq = linear("self_attn.q_proj", qw, d)?;
        let wk = linear("self_attn.k_proj", kvw, d)?;
        let wv = linear("self_attn.v_proj", kvw, d)?;
        let wo = linear("self_attn.o_proj", d, qw)?;
        let mut gate_up = source.tensor(&format!("{p}.mlp.gate_proj.weight"), &[f, d])?;
        gate_up.extend(source.tensor(&format!("{p}.mlp.up_proj.weight"), &[f, d])?);
        let w_gate_up = backend.linear_weight(gate_up, 2 * f, d)?;
        let w_down = backend.linear_weight(source.tensor(&format!("{p}.mlp.down_proj.weight"), &[d, f])?, d, f)?;
        let mut vector = |name: &str, len: usize| backend.upload(source.tensor(&format!("{p}.{name}"), &[len])?);
        let (bq, bk, bv) = if config.attention_bias {
            (Some(vector("self_attn.q_proj.bias", qw)?), Some(vector("self_attn.k_proj.bias", kvw)?), Some(vector("self_attn.v_proj.bias", kvw)?))
        } else {
            (None, None, None)
        };
        layers.push(LayerWeights {
            attn_norm: vector("input_layernorm.weight", d)?,
            ffn_norm: vector("post_attention_layernorm.weight", d)?,
            wq,
            wk,
            wv,
            wo,
            bq,
            bk,
            bv,
            w_gate_up,
            w_down,
        });
        progress(i + 2, total);
    }
    let final_norm = backend.upload(source.tensor("model.norm.weight", &[d])?)?;
    progress(total, total);
    Ok(ModelWeights { embed, layers, final_norm, lm_head, retaining: None })
}

/// Loads Locret retaining heads (`model.layers.{i}.self_attn.fc1/fc2`); biases optional.
pub fn load_retaining<B: Backend>(backend: &B, config: &ModelConfig, source: &mut dyn TensorSource, hidden: usize) -> Result<Vec<RetainingHead<B>>> {
    let qkv = config.q_width() + 2 * config.kv_width();
    (0..config.layers)
        .map(|i| {
            let p = format!("model.layers.{i}.self_attn");
            let bias = |source: &mut dyn TensorSource, name: String, len: usize| -> Result<Option<B::Buf>> {
                if source.has(&name) {
                    Ok(Some(backend.upload(source.tensor(&name, &[len])?)?))
                } else {
                    Ok(None)
                }
            };
            Ok(RetainingHead {
                fc1: backend.linear_weight(source.tensor(&format!("{p}.fc1.weight"), &[hidden, qkv])?, hidden, qkv)?,
                fc1_bias: bias(source, format!("{p}.fc1.bias"), hidden)?,
                fc2: backend.linear_weight(source.tensor(&format!("{p}.fc2.weight"), &[config.kv_heads, hidden])?, config.kv_heads, hidden)?,
                fc2_bias: bias(source, format!("{p}.fc2.bias"), config.kv_heads)?,
                hidden,
            })
        })
        .collect()
}
