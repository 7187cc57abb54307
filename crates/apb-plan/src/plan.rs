//! A plan: the layout with its costs and predicted times, per host and overall.

use crate::balance;
use crate::cost::{self, HostWork, Memory};
use crate::error::PlanResult;
use crate::input::PlanInput;
use crate::layout::{self, HostLayout, Layout};
use crate::settings::{self, Settings};
use crate::time::{self, Detail, PhaseTimes};

#[derive(Debug, Clone, PartialEq)]
pub struct HostPlan {
    pub layout: HostLayout,
    /// Per layer.
    pub work: HostWork,
    /// Per layer, seconds.
    pub phases: PhaseTimes,
    pub memory: Memory,
    /// Per layer, seconds: this host's share of the query pass, and its merge.
    pub query_compute_s: f64,
    pub query_merge_s: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Balance {
    pub even_prefill_s: f64,
    pub balanced_prefill_s: f64,
}

impl Balance {
    pub fn gain(&self) -> f64 {
        self.even_prefill_s / self.balanced_prefill_s
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub input: PlanInput,
    pub layout: Layout,
    pub hosts: Vec<HostPlan>,
    /// Critical path of prefill, seconds.
    pub prefill_s: f64,
    /// The query pass after prefill up to the first token's logits, seconds.
    pub query_s: f64,
    pub balance: Option<Balance>,
}

impl Plan {
    pub fn settings(&self) -> &Settings {
        &self.layout.settings
    }
    pub fn ttft_s(&self) -> f64 {
        self.prefill_s + self.query_s
    }
    pub fn memory_limit_bytes(&self) -> f64 {
        self.input.hardware.memory_gib * 1024.0 * 1024.0 * 1024.0
    }
    pub fn memory_peak_bytes(&self) -> f64 {
        self.hosts.iter().map(|h| h.memory.total).fold(0.0, f64::max)
    }
    pub fn fits(&self) -> bool {
        self.memory_peak_bytes() <= self.memory_limit_bytes()
    }
    /// The host whose own prefill work takes longest.
    pub fn slowest_host(&self) -> u64 {
        let mut best = (0, -1.0);
        for h in &self.hosts {
            if h.phases.total() > best.1 {
                best = (h.layout.host, h.phases.total());
            }
        }
        best.0
    }
}

pub fn plan(input: &PlanInput) -> PlanResult<Plan> {
    plan_with(input, Detail::Waves)
}

/// A plan whose attention calls are timed with `detail` (recommend screens its many
/// candidates with `Detail::Spread`, then plans the best ones fully).
pub fn plan_with(input: &PlanInput, detail: Detail) -> PlanResult<Plan> {
    let s = settings::resolve(input)?;
    if !input.balances() {
        return assemble(input, &s, None, detail);
    }
    let even = assemble(input, &s, None, detail)?;
    let sizes = balance::sizes(input, &s);
    let mut balanced = match assemble(input, &s, Some(&sizes), detail) {
        Ok(p) => p,
        // Balanced only by default: settings chosen for even blocks (a passing length of a
        // whole block) may not fit the shorter ones, so the even split runs, unremarked.
        Err(_) if input.balanced.is_none() => return Ok(kept_even(even, None)),
        Err(e) => return Err(e),
    };
    if balanced.prefill_s > even.prefill_s {
        // Tiny blocks: rounding can undo the gain. Keep the even split, and tell whoever asked.
        let asked = input.balanced == Some(true);
        return Ok(kept_even(even, asked.then_some("balanced sizes predicted no gain here; the even split is kept")));
    }
    balanced.balance = Some(Balance { even_prefill_s: even.prefill_s, balanced_prefill_s: balanced.prefill_s });
    Ok(balanced)
}

/// The even split, kept where balanced blocks were to run: its balance says there is no gain.
fn kept_even(mut even: Plan, warning: Option<&str>) -> Plan {
    even.layout.settings.warnings.extend(warning.map(str::to_string));
    even.balance = Some(Balance { even_prefill_s: even.prefill_s, balanced_prefill_s: even.prefill_s });
    even
}

fn assemble(input: &PlanInput, s: &Settings, sizes: Option<&[u64]>, detail: Detail) -> PlanResult<Plan> {
    let layout = layout::build(input, s, sizes);
    layout::check(&layout)?;
    let hosts: Vec<HostPlan> = layout
        .hosts
        .iter()
        .map(|host| {
            let work = cost::host_work(input, s, host);
            let phases = time::host_phases(input, s, host, &work, detail);
            let (query_compute_s, query_merge_s) = time::host_query_time(input, s, host);
            HostPlan {
                layout: host.clone(),
                memory: cost::memory(input, s, host),
                work,
                phases,
                query_compute_s,
                query_merge_s,
            }
        })
        .collect();
    let layers = input.model.layers as f64;
    let phases: Vec<PhaseTimes> = hosts.iter().map(|h| h.phases.clone()).collect();
    let prefill_s = layers * time::layer_critical_path(input, &layout, &phases, detail);
    let max = |f: &dyn Fn(&HostPlan) -> f64| hosts.iter().map(f).fold(0.0, f64::max);
    let query_layer_s = max(&|h| h.query_compute_s) + max(&|h| h.query_merge_s);
    let query_s = layers * query_layer_s + time::lm_head(input);
    Ok(Plan { input: input.clone(), layout, hosts, prefill_s, query_s, balance: None })
}
