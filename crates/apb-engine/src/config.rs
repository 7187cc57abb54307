//! The model's shape and numerics, as read from a Hugging Face config.json (the runtime
//! package parses and checks the JSON; this is what reaches the engine).

use crate::error::{EngineError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    Llama,
    Mistral,
    Qwen2,
}

/// Llama 3.1's frequency-dependent RoPE scaling ("rope_type": "llama3").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Llama3Scaling {
    pub factor: f64,
    pub low_freq_factor: f64,
    pub high_freq_factor: f64,
    pub original_max_positions: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub architecture: Architecture,
    pub vocab: usize,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub intermediate: usize,
    pub rms_norm_eps: f32,
    pub rope_theta: f64,
    pub rope_scaling: Option<Llama3Scaling>,
    pub tied_embeddings: bool,
    /// Qwen2 adds biases to the q, k and v projections.
    pub attention_bias: bool,
    pub max_positions: usize,
}

impl ModelConfig {
    pub fn q_width(&self) -> usize {
        self.heads * self.head_dim
    }
    pub fn kv_width(&self) -> usize {
        self.kv_heads * self.head_dim
    }
    pub fn group(&self) -> usize {
        self.heads / self.kv_heads
    }

    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("vocab", self.vocab),
            ("hidden", self.hidden),
            ("layers", self.layers),
            ("heads", self.heads),
            ("kvHeads", self.kv_heads),
            ("headDim", self.head_dim),
            ("intermediate", self.intermediate),
        ];
        for (name, v) in positive {
            if v == 0 {
                return Err(EngineError::invalid(format!("config.{name}"), format!("config.{name} must be at least 1")));
            }
        }
        if !self.heads.is_multiple_of(self.kv_heads) {
            return Err(EngineError::invalid("config.kvHeads", format!("kvHeads ({}) must divide heads ({})", self.kv_heads, self.heads)));
        }
        if !self.head_dim.is_multiple_of(2) {
            return Err(EngineError::invalid("config.headDim", format!("headDim ({}) must be even for RoPE", self.head_dim)));
        }
        let finite_positive = |x: f64| x > 0.0 && x.is_finite();
        if !finite_positive(self.rms_norm_eps as f64) || !finite_positive(self.rope_theta) {
            return Err(EngineError::invalid("config", "rmsNormEps and ropeTheta must be positive finite numbers"));
        }
        Ok(())
    }

    /// The shape the planner needs.
    pub fn plan_shape(&self) -> apb_plan::input::ModelShape {
        apb_plan::input::ModelShape {
            layers: self.layers as u64,
            hidden: self.hidden as u64,
            heads: self.heads as u64,
            kv_heads: self.kv_heads as u64,
            head_dim: self.head_dim as u64,
            intermediate: self.intermediate as u64,
            vocab: self.vocab as u64,
            bytes_per_weight: 4.0,
            tied_embeddings: self.tied_embeddings,
            retaining_hidden: 1024,
        }
    }
}
