//! Every strategy on the same input, side by side, with speedups over full attention.

use crate::error::PlanResult;
use crate::input::{self, Fields, PlanInput, Strategy};
use crate::json::Json;
use crate::output;
use crate::plan;

pub struct CompareInput {
    pub base: PlanInput,
    pub strategies: Vec<Strategy>,
}

pub fn parse(v: &Json) -> PlanResult<CompareInput> {
    let mut f = Fields::new(v, "")?;
    let base = input::parse_plan_fields(&mut f)?;
    let strategies = match f.opt_choices("strategies", input::strategy_names())? {
        Some(names) => names.iter().filter_map(|n| Strategy::from_name(n)).collect(),
        None => Strategy::ALL.to_vec(),
    };
    f.finish()?;
    Ok(CompareInput { base, strategies })
}

/// The input as `strategy` would run it: star keeps the query out of its anchor, as
/// StarAttn does; anchor and passing lengths apply to apb only.
pub fn input_for(base: &PlanInput, strategy: Strategy) -> PlanInput {
    let mut i = base.clone();
    i.strategy = strategy;
    if strategy != Strategy::Apb {
        i.anchor_tokens = None;
        i.passing_tokens = None;
    }
    if strategy == Strategy::Star {
        i.query_in_anchor = false;
    }
    if !strategy.has_anchor() {
        i.balanced = Some(false);
    }
    if strategy == Strategy::Full {
        i.hosts = 1;
    }
    i
}

pub fn compare(c: &CompareInput) -> Json {
    let full_ttft = plan::plan(&input_for(&c.base, Strategy::Full)).ok().map(|p| p.ttft_s());
    let rows = c
        .strategies
        .iter()
        .map(|&s| match plan::plan(&input_for(&c.base, s)) {
            Ok(p) => {
                let mut fields = output::settings_fields(&p);
                fields.push(("summary", output::summary_json(&p)));
                let speedup = full_ttft.map(|f| Json::Num((f / p.ttft_s() * 1e4).round() / 1e4)).unwrap_or(Json::Null);
                fields.push(("speedupVsFull", speedup));
                Json::obj(fields)
            }
            Err(e) => Json::obj(vec![("strategy", Json::str(s.name())), ("error", e.to_json().get("error").cloned().unwrap_or(Json::Null))]),
        })
        .collect();
    Json::obj(vec![
        ("contextTokens", Json::int(c.base.context_tokens)),
        ("queryTokens", Json::int(c.base.query_tokens)),
        ("hosts", Json::int(c.base.hosts)),
        ("strategies", Json::Arr(rows)),
    ])
}
