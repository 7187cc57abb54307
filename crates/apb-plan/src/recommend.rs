//! Searches host counts (and balanced sizing) for the least predicted time to first token
//! within the device memory. Anchor and passing lengths never go below the paper's
//! shares of the block (l_a/l_b = 1/4, l_p/l_b = 1/8) unless the caller lowers them: both
//! lengths only add work and memory, so the least allowed lengths are the fastest, and the
//! search over them settles on those floors (rounded up to 128, so never below them).

use crate::error::{code, PlanError, PlanResult};
use crate::input::{self, Fields, PlanInput, Strategy, GRANULE};
use crate::json::Json;
use crate::plan::{self, Plan};
use crate::time::Detail;
use crate::settings::{self, ceil_div};

pub struct RecommendInput {
    pub base: PlanInput,
    pub max_hosts: u64,
    pub strategies: Vec<Strategy>,
    pub min_anchor_ratio: f64,
    pub min_passing_ratio: f64,
    pub allow_balanced: bool,
}

const TOP: usize = 10;
/// Candidates planned again in full after screening.
const SCREENED: usize = 4 * TOP;

pub fn parse(v: &Json) -> PlanResult<RecommendInput> {
    for searched in ["hosts", "anchorTokens", "passingTokens", "balanced"] {
        if v.get(searched).is_some() {
            return Err(PlanError::new(
                code::UNKNOWN_FIELD,
                searched,
                format!("recommend searches {searched} itself; drop it (bound the search with maxHosts, minAnchorRatio, minPassingRatio, allowBalanced)"),
            ));
        }
    }
    let mut f = Fields::new(v, "")?;
    let base = input::parse_plan_fields(&mut f)?;
    let max_hosts = f.int("maxHosts", 1, 1024)?;
    let strategies = match f.opt_choices("strategies", input::strategy_names())? {
        Some(names) => names.iter().filter_map(|n| Strategy::from_name(n)).collect(),
        None => vec![Strategy::Apb],
    };
    let min_anchor_ratio = f.opt_positive("minAnchorRatio", 1.0)?.unwrap_or(0.25);
    let min_passing_ratio = f.opt_positive("minPassingRatio", 1.0)?.unwrap_or(0.125);
    let allow_balanced = f.opt_bool("allowBalanced")?.unwrap_or(true);
    f.finish()?;
    Ok(RecommendInput { base, max_hosts, strategies, min_anchor_ratio, min_passing_ratio, allow_balanced })
}

/// The least multiple of the granule at or above `ratio * block` (small blocks: the least
/// whole number), capped at the block.
fn at_least(ratio: f64, block: u64) -> u64 {
    let x = (ratio * block as f64).ceil() as u64;
    let rounded = if x >= GRANULE { ceil_div(x, GRANULE) * GRANULE } else { x };
    rounded.min(block)
}

fn candidate(r: &RecommendInput, strategy: Strategy, hosts: u64, balanced: bool, detail: Detail) -> PlanResult<Plan> {
    let mut i = crate::compare::input_for(&r.base, strategy);
    if strategy != Strategy::Full {
        i.hosts = hosts;
    }
    i.balanced = Some(balanced);
    if strategy == Strategy::Apb && hosts > 1 {
        let block = settings::resolve(&i)?.block_tokens;
        let need = if i.query_in_anchor { i.prefix_tokens + i.query_tokens } else { 0 };
        i.anchor_tokens = Some(at_least(r.min_anchor_ratio, block).max(need).min(block));
        i.passing_tokens = Some(at_least(r.min_passing_ratio, block));
    }
    plan::plan_with(&i, detail)
}

fn row(p: &Plan) -> Json {
    let mut fields = crate::output::settings_fields(p);
    fields.push(("summary", crate::output::summary_json(p)));
    Json::obj(fields)
}

pub fn recommend(r: &RecommendInput) -> Json {
    let mut found: Vec<(Strategy, u64, bool, Plan)> = Vec::new();
    let (mut searched, mut infeasible, mut too_big) = (0u64, 0u64, 0u64);
    for &strategy in &r.strategies {
        let hosts_range = if strategy == Strategy::Full { 1..=1 } else { 1..=r.max_hosts };
        for hosts in hosts_range {
            let balance_options: &[bool] =
                if r.allow_balanced && strategy.has_anchor() && hosts > 1 { &[false, true] } else { &[false] };
            for &balanced in balance_options {
                searched += 1;
                match candidate(r, strategy, hosts, balanced, Detail::Spread) {
                    Ok(p) if p.fits() => found.push((strategy, hosts, balanced, p)),
                    Ok(_) => too_big += 1,
                    Err(_) => infeasible += 1,
                }
            }
        }
    }
    // Screened with every attention call's blocks spread evenly (fast over hundreds of
    // candidates); the best SCREENED are planned again with their last waves dispatched, and
    // ranked by that.
    let by_ttft = |a: &Plan, b: &Plan| a.ttft_s().partial_cmp(&b.ttft_s()).unwrap_or(std::cmp::Ordering::Equal);
    found.sort_by(|a, b| by_ttft(&a.3, &b.3));
    let mut found: Vec<Plan> = found
        .into_iter()
        .take(SCREENED)
        .map(|(strategy, hosts, balanced, screened)| candidate(r, strategy, hosts, balanced, Detail::Waves).unwrap_or(screened))
        .collect();
    found.sort_by(by_ttft);
    let best = found.first().map(row).unwrap_or(Json::Null);
    let reason = if found.is_empty() {
        Json::str("no searched setting fits in device memory; allow more hosts or a device with more memory")
    } else {
        Json::Null
    };
    Json::obj(vec![
        ("best", best),
        ("candidates", Json::Arr(found.iter().take(TOP).map(row).collect())),
        ("searched", Json::int(searched)),
        ("rejected", Json::obj(vec![("infeasible", Json::int(infeasible)), ("memory", Json::int(too_big))])),
        ("minAnchorRatio", Json::Num(r.min_anchor_ratio)),
        ("minPassingRatio", Json::Num(r.min_passing_ratio)),
        ("reason", reason),
    ])
}
