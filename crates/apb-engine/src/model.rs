//! A loaded model: its configuration, weights on a backend, and RoPE frequencies.

use crate::backend::Backend;
use crate::config::ModelConfig;
use crate::heads::Heads;
use crate::error::Result;
use crate::rope;
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

    pub fn load_retaining_heads(&mut self, source: &mut dyn TensorSource, hidden: usize) -> Result<()> {
        self.weights.retaining = Some(weights::load_retaining(&self.backend, &self.config, source, hidden)?);
        Ok(())
    }

    pub fn heads(&self) -> Heads {
        Heads { q_heads: self.config.heads, kv_heads: self.config.kv_heads, head_dim: self.config.head_dim }
    }
}
