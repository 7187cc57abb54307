//! Engine errors: data with a stable code, the same `{code, message, path}` shape as the
//! planner's, so they cross the addon boundary unchanged.

use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub struct EngineError {
    pub code: &'static str,
    pub message: String,
    pub path: String,
}

pub mod code {
    pub const INVALID_INPUT: &str = "INVALID_INPUT";
    pub const MODEL_FILE: &str = "MODEL_FILE";
    pub const TENSOR_MISSING: &str = "TENSOR_MISSING";
    pub const TENSOR_SHAPE: &str = "TENSOR_SHAPE";
    pub const TENSOR_DTYPE: &str = "TENSOR_DTYPE";
    pub const PLAN: &str = "PLAN";
    pub const COMM: &str = "COMM";
    pub const CANCELLED: &str = "CANCELLED";
    /// NaN or Inf in a model's weights or in the logits it produced.
    pub const NUMERIC: &str = "NUMERIC";
    /// The prompt is longer than the model's positions (max_position_embeddings).
    pub const PROMPT_TOO_LONG: &str = "PROMPT_TOO_LONG";
    /// The model was disposed; load it again.
    pub const DISPOSED: &str = "DISPOSED";
    pub const GPU_MEMORY: &str = "GPU_MEMORY";
    pub const CUDA: &str = "CUDA";
    pub const CUDA_UNAVAILABLE: &str = "CUDA_UNAVAILABLE";
    pub const NCCL_UNAVAILABLE: &str = "NCCL_UNAVAILABLE";
    pub const INTERNAL: &str = "INTERNAL";
}

impl EngineError {
    pub fn new(code: &'static str, path: impl Into<String>, message: impl Into<String>) -> EngineError {
        EngineError { code, message: message.into(), path: path.into() }
    }
    pub fn invalid(path: impl Into<String>, message: impl Into<String>) -> EngineError {
        EngineError::new(code::INVALID_INPUT, path, message)
    }
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}]", self.message, self.code)
    }
}

impl From<apb_plan::PlanError> for EngineError {
    fn from(e: apb_plan::PlanError) -> EngineError {
        EngineError { code: code::PLAN, message: e.message, path: e.path }
    }
}

pub type Result<T> = std::result::Result<T, EngineError>;
