//! Resolves an input into concrete settings: effective host count, block, anchor and
//! passing lengths (the paper's defaults where the user gave none), and checks that they
//! can work together. Defaults follow APB at 8 hosts: l_a = l_b/4, l_p = l_b/8, rounded
//! down to multiples of 128. For other host counts the same ratios to the block are kept,
//! so each host sees the same share of every earlier block; see docs/PLANNER.md.

use crate::error::{code, PlanError, PlanResult};
use crate::input::{PlanInput, Scorer, Strategy, GRANULE};

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub strategy: Strategy,
    pub hosts: u64,
    /// Nominal local block l_b: the padded context divided by the hosts.
    pub block_tokens: u64,
    pub padded_tokens: u64,
    pub anchor_tokens: u64,
    pub passing_tokens: u64,
    pub query_in_anchor: bool,
    pub warnings: Vec<String>,
}

/// Rounds down to the granule, or keeps small values as they are (a 300-token block keeps
/// a 75-token anchor rather than none).
pub fn floor_granule(x: u64) -> u64 {
    if x >= GRANULE {
        x - x % GRANULE
    } else {
        x
    }
}

pub fn ceil_div(a: u64, b: u64) -> u64 {
    (a + b - 1) / b
}

pub fn default_anchor(block: u64) -> u64 {
    floor_granule(block / 4)
}

pub fn default_passing(block: u64) -> u64 {
    floor_granule(block / 8)
}

fn infeasible(path: &str, message: String) -> PlanError {
    PlanError::new(code::INFEASIBLE, path, message)
}

fn range_error(path: &str, message: String) -> PlanError {
    PlanError::new(code::OUT_OF_RANGE, path, message)
}

pub fn resolve(input: &PlanInput) -> PlanResult<Settings> {
    let n = input.context_tokens;
    let mut warnings = Vec::new();
    let hosts = if input.strategy == Strategy::Full {
        if input.hosts > 1 {
            warnings.push(format!("full attention runs on one host; hosts {} ignored", input.hosts));
        }
        1
    } else {
        input.hosts
    };
    if hosts > n {
        return Err(infeasible(
            "hosts",
            format!("hosts ({hosts}) exceeds contextTokens ({n}): every host needs a token; use at most {n} hosts"),
        ));
    }
    let split = if input.strategy == Strategy::RingZigzag { 2 * hosts } else { hosts };
    if split > n {
        return Err(infeasible(
            "hosts",
            format!("ring-zigzag cuts the context into 2 x hosts = {split} chunks but it has {n} tokens; use at most {} hosts", n / 2),
        ));
    }
    let padded_tokens = ceil_div(n, split) * split;
    let block_tokens = padded_tokens / hosts;
    if input.balanced == Some(true) && !input.strategy.has_anchor() {
        return Err(range_error(
            "balanced",
            format!("balanced sizing applies to apb and star; {} splits evenly", input.strategy.name()),
        ));
    }
    check_not_for(input, "anchorTokens", input.anchor_tokens)?;
    check_not_for(input, "passingTokens", input.passing_tokens)?;
    check_heads(input, hosts)?;

    let query_in_anchor = input.query_in_anchor && input.strategy.has_anchor();
    let (anchor_tokens, passing_tokens) = match input.strategy {
        Strategy::Apb => apb_lengths(input, hosts, block_tokens, query_in_anchor)?,
        Strategy::Star => star_lengths(input, hosts, block_tokens, query_in_anchor)?,
        _ => (0, 0),
    };
    Ok(Settings {
        strategy: input.strategy,
        hosts,
        block_tokens,
        padded_tokens,
        anchor_tokens,
        passing_tokens,
        query_in_anchor,
        warnings,
    })
}

fn check_not_for(input: &PlanInput, field: &str, v: Option<u64>) -> PlanResult<()> {
    match v {
        Some(x) if x > 0 && !input.strategy.has_anchor() => Err(range_error(
            field,
            format!("{field} applies to apb and star; {} has no anchor or passing block (drop {field})", input.strategy.name()),
        )),
        _ => Ok(()),
    }
}

fn check_heads(input: &PlanInput, hosts: u64) -> PlanResult<()> {
    if input.strategy != Strategy::Ulysses {
        return Ok(());
    }
    let (q, kv) = (input.model.heads, input.model.kv_heads);
    if q % hosts != 0 || (kv % hosts != 0 && hosts % kv != 0) {
        return Err(infeasible(
            "hosts",
            format!(
                "ulysses splits heads across hosts: {q} query heads and {kv} KV heads cannot be shared by {hosts} hosts \
                 (hosts must divide the query heads, and divide or be a multiple of the KV heads)"
            ),
        ));
    }
    Ok(())
}

/// The anchor must hold the BOS/system prefix and the query it embeds.
fn anchor_need(input: &PlanInput, query_in_anchor: bool) -> u64 {
    if query_in_anchor {
        input.prefix_tokens + input.query_tokens
    } else {
        0
    }
}

fn check_query_fits(input: &PlanInput, need: u64, block: u64) -> PlanResult<()> {
    if need <= block {
        return Ok(());
    }
    Err(infeasible(
        "queryTokens",
        format!(
            "queryTokens ({}) plus prefixTokens ({}) must fit in the anchor, at most a block of {block} tokens; use fewer hosts or a shorter query",
            input.query_tokens, input.prefix_tokens
        ),
    ))
}

fn apb_lengths(input: &PlanInput, hosts: u64, block: u64, query_in_anchor: bool) -> PlanResult<(u64, u64)> {
    if hosts == 1 {
        // One host sees its whole block exactly: nothing to anchor and nothing to pass.
        return Ok((0, 0));
    }
    let need = anchor_need(input, query_in_anchor);
    let anchor = match input.anchor_tokens {
        Some(a) => {
            if a > block {
                return Err(range_error(
                    "anchorTokens",
                    format!("anchorTokens ({a}) must be at most the block length l_b = {block}"),
                ));
            }
            if a > 0 && a < need {
                return Err(range_error(
                    "anchorTokens",
                    format!(
                        "anchorTokens ({a}) must hold the prefix ({}) and the embedded query ({}): give at least {need}, or 0 for no anchor",
                        input.prefix_tokens, input.query_tokens
                    ),
                ));
            }
            a
        }
        None => {
            check_query_fits(input, need, block)?;
            let a = default_anchor(block);
            if a < need {
                (ceil_div(need, GRANULE) * GRANULE).min(block)
            } else {
                a
            }
        }
    };
    let passing = match input.passing_tokens {
        Some(p) if p > block => {
            return Err(range_error(
                "passingTokens",
                format!("passingTokens ({p}) must be at most the block length l_b = {block}"),
            ))
        }
        Some(p) => p,
        None => default_passing(block),
    };
    if passing > 0 && input.scorer == Scorer::Query && input.query_tokens == 0 {
        return Err(range_error(
            "queryTokens",
            "the query-aware scorer picks passing keys by the query's attention, so queryTokens must be at least 1 \
             (or use scorer 'retaining-heads', or passingTokens 0)"
                .to_string(),
        ));
    }
    Ok((anchor, passing))
}

fn star_lengths(input: &PlanInput, hosts: u64, block: u64, query_in_anchor: bool) -> PlanResult<(u64, u64)> {
    if let Some(a) = input.anchor_tokens {
        if a != block && hosts > 1 {
            return Err(range_error(
                "anchorTokens",
                format!("star's anchor is the whole first block (l_b = {block}); drop anchorTokens or use apb"),
            ));
        }
    }
    if let Some(p) = input.passing_tokens {
        if p > 0 {
            return Err(range_error("passingTokens", "star passes no blocks; drop passingTokens or use apb".to_string()));
        }
    }
    if hosts == 1 {
        return Ok((0, 0));
    }
    check_query_fits(input, anchor_need(input, query_in_anchor), block)?;
    Ok((block, 0))
}
