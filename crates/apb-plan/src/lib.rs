//! apb-plan: the layout and cost model of APB and of the baselines it is measured against.
//! One source of truth: the browser (wasm), the CLI, the control plane and the native engine
//! all take their layouts from here. See docs/PLANNER.md for the model.
//!
//! The crate has no dependencies and builds with Rust 1.63 (the wasm32 toolchain available
//! here), natively and for wasm32-unknown-unknown.

pub mod balance;
pub mod compare;
pub mod cost;
pub mod error;
pub mod input;
pub mod json;
pub mod kernel;
pub mod layout;
pub mod output;
pub mod plan;
pub mod recommend;
pub mod settings;
pub mod time;
#[cfg(target_arch = "wasm32")]
mod wasm;

pub use error::{PlanError, PlanResult};
pub use input::{PlanInput, Strategy};
pub use plan::{plan, Plan};

use error::code;
use json::Json;

/// Operations exposed over the wasm ABI and the native command line.
pub const OPS: [&str; 4] = ["plan", "compare", "recommend", "version"];

/// Runs one operation on a JSON input and returns JSON: the result, or `{"error": {code,
/// message, path}}`. Never panics on any input.
pub fn call(op: &str, input: &str) -> String {
    let result = parse_input(input).and_then(|v| dispatch(op, &v));
    let json = match result {
        Ok(v) => v,
        Err(e) => e.to_json(),
    };
    json.write().unwrap_or_else(|where_| {
        PlanError::new(code::INTERNAL, "", format!("the plan held a non-finite number ({where_}); please report this input"))
            .to_json()
            .write()
            .unwrap_or_default()
    })
}

fn parse_input(input: &str) -> PlanResult<Json> {
    json::parse(input).map_err(|m| PlanError::new(code::INVALID_JSON, "", format!("input is not valid JSON: {m}")))
}

fn dispatch(op: &str, v: &Json) -> PlanResult<Json> {
    match op {
        "plan" => Ok(output::plan_json(&plan::plan(&input::parse_plan_input(v)?)?)),
        "compare" => Ok(compare::compare(&compare::parse(v)?)),
        "recommend" => Ok(recommend::recommend(&recommend::parse(v)?)),
        "version" => Ok(Json::obj(vec![("version", Json::str(env!("CARGO_PKG_VERSION")))])),
        other => Err(PlanError::new(
            code::UNKNOWN_OP,
            "",
            format!("unknown operation '{other}'; known: {}", OPS.join(", ")),
        )),
    }
}
