//! Engine errors: data with a stable code, the same `{code, message, path}` shape as the
//! planner's, so they cross the addon boundary unchanged.

use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub struct EngineError {
    pub code: &'static str,
    pub message: String,
    pub path: String,
}

/// Stable error codes; packages/errors/src/codes.ts lists them all with what each means, the
/// CLI's exit status for it and how to fix it (its test fails when a code here is not there).
pub mod code {
    /// The planner's codes (INFEASIBLE, OUT_OF_RANGE, ..., INTERNAL): a layout the planner
    /// rejects keeps its code through the engine, so `apb plan` and `apb run` say the same.
    pub use apb_plan::error::code::*;

    pub const INVALID_INPUT: &str = "INVALID_INPUT";
    pub const MODEL_FILE: &str = "MODEL_FILE";
    pub const TENSOR_MISSING: &str = "TENSOR_MISSING";
    pub const TENSOR_SHAPE: &str = "TENSOR_SHAPE";
    pub const TENSOR_DTYPE: &str = "TENSOR_DTYPE";
    pub const COMM: &str = "COMM";
    pub const CANCELLED: &str = "CANCELLED";
    /// NaN or Inf in a model's weights or in the logits it produced.
    pub const NUMERIC: &str = "NUMERIC";
    /// The prompt is longer than the model's positions (max_position_embeddings).
    pub const PROMPT_TOO_LONG: &str = "PROMPT_TOO_LONG";
    /// The model was disposed; load it again.
    pub const DISPOSED: &str = "DISPOSED";
    /// The weights or the request do not fit the GPU's free memory.
    pub const GPU_MEMORY: &str = "GPU_MEMORY";
    /// A CUDA driver, cuBLAS or kernel-launch call failed at run time.
    pub const CUDA: &str = "CUDA";
    /// The CUDA backend cannot run on this machine or build (no driver, GPU, kernels...).
    pub const CUDA_UNAVAILABLE: &str = "CUDA_UNAVAILABLE";
    pub const NCCL_UNAVAILABLE: &str = "NCCL_UNAVAILABLE";
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

/// The plan's error as it is: its code (`&'static str` on both sides) passes through.
impl From<apb_plan::PlanError> for EngineError {
    fn from(e: apb_plan::PlanError) -> EngineError {
        EngineError { code: e.code, message: e.message, path: e.path }
    }
}

pub type Result<T> = std::result::Result<T, EngineError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_error_keeps_its_code_and_path() {
        let plan = apb_plan::PlanError::new(apb_plan::error::code::INFEASIBLE, "hosts", "hosts (500) exceeds contextTokens (2)".into());
        let e = EngineError::from(plan);
        assert_eq!((e.code, e.path.as_str(), e.message.as_str()), (code::INFEASIBLE, "hosts", "hosts (500) exceeds contextTokens (2)"));
    }

    #[test]
    fn the_planner_codes_are_the_engine_codes() {
        assert_eq!(code::OUT_OF_RANGE, apb_plan::error::code::OUT_OF_RANGE);
        assert_eq!(code::INTERNAL, "INTERNAL");
    }
}
