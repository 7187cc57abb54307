//! A loaded model: its configuration, weights on a backend, and RoPE frequencies.

use crate::backend::Backend;
use crate::config::ModelConfig;
use crate::heads::Heads;
use crate::error::{code, EngineError, Result};
use crate::rope;
use crate::safetensors::{TensorEntry, TensorFiles};
use crate::weights::{self, ModelWeights, TensorSource};

pub struct Model<B: Backend> {
    pub backend: B,
    pub config: ModelConfig,
    pub weights: ModelWeights<B>,
    pub inv_freq: Vec<f64>,
}

impl<B: Backend> Model<B> {
    pub fn load(backend: B, config: ModelConfig, source: &mut dyn TensorSource, progress: &mut dyn FnMut(usize, usize)) -> Result<Model<B>> {
        config.validate()?;
        let weights = weights::load(&backend, &config, source, progress)?;
        let inv_freq = rope::inv_freq(&config);
        Ok(Model { backend, config, weights, inv_freq })
    }

    /// Loads the retaining-heads scorer from its own file, whose hidden size is the first
    /// layer's fc1 rows.
    pub fn load_retaining_heads(&mut self, entries: Vec<TensorEntry>) -> Result<()> {
        let fc1 = entries.iter().find(|t| t.name.ends_with("layers.0.self_attn.fc1.weight")).ok_or_else(|| {
            EngineError::new(code::TENSOR_MISSING, "retaining", "the retaining-heads file has no model.layers.0.self_attn.fc1.weight")
        })?;
        let hidden = fc1.shape.first().copied().unwrap_or(0);
        let mut source = TensorFiles::new(entries);
        self.weights.retaining = Some(weights::load_retaining(&self.backend, &self.config, &mut source, hidden)?);
        Ok(())
    }

    pub fn heads(&self) -> Heads {
        Heads { q_heads: self.config.heads, kv_heads: self.config.kv_heads, head_dim: self.config.head_dim }
    }
}
