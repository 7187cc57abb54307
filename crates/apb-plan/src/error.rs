//! Errors are data: a stable `code`, a human `message` that says how to fix it, and the
//! `path` of the offending input field. The same shape crosses wasm, the CLI, the native
//! addon and the control plane.

use crate::json::Json;

#[derive(Debug, Clone, PartialEq)]
pub struct PlanError {
    pub code: &'static str,
    pub message: String,
    pub path: String,
}

/// Stable error codes. Changing one is a breaking change for every consumer. They are in
/// apb's one list (packages/errors/src/codes.ts: meaning, exit status, fix), whose test reads
/// this module; the engine re-exports it, so these codes pass through `apb run` unchanged.
pub mod code {
    pub const INVALID_JSON: &str = "INVALID_JSON";
    pub const MISSING_FIELD: &str = "MISSING_FIELD";
    pub const WRONG_TYPE: &str = "WRONG_TYPE";
    pub const OUT_OF_RANGE: &str = "OUT_OF_RANGE";
    pub const UNKNOWN_FIELD: &str = "UNKNOWN_FIELD";
    pub const INFEASIBLE: &str = "INFEASIBLE";
    pub const UNKNOWN_OP: &str = "UNKNOWN_OP";
    pub const INTERNAL: &str = "INTERNAL";
}

impl PlanError {
    pub fn new(code: &'static str, path: &str, message: String) -> PlanError {
        PlanError { code, message, path: path.to_string() }
    }

    pub fn to_json(&self) -> Json {
        Json::obj(vec![(
            "error",
            Json::obj(vec![
                ("code", Json::str(self.code)),
                ("message", Json::string(self.message.clone())),
                ("path", Json::string(self.path.clone())),
            ]),
        )])
    }
}

pub type PlanResult<T> = Result<T, PlanError>;
