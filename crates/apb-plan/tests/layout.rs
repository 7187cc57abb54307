//! The layout, as a specification: who holds which tokens and which keys each row sees.

mod common;

use apb_plan::input::{PlanInput, Strategy};
use apb_plan::layout::{anchor_document, AnchorKind, KeySource, Mask, Range, RowKind};
use apb_plan::plan;
use common::{input, random_input, Rng};

#[test]
fn paper_defaults_at_128k_on_8_hosts() {
    let p = plan(&input(131_072, 8, Strategy::Apb)).unwrap();
    let s = p.settings();
    assert_eq!((s.block_tokens, s.anchor_tokens, s.passing_tokens), (16_384, 4096, 2048));
}

#[test]
fn defaults_keep_the_paper_ratios_for_other_host_counts() {
    let p = plan(&input(131_072, 4, Strategy::Apb)).unwrap();
    assert_eq!((p.settings().anchor_tokens, p.settings().passing_tokens), (8192, 4096));
    let p = plan(&input(100_000, 3, Strategy::Apb)).unwrap();
    // l_b = 33334: l_b/4 = 8333 -> 8320, l_b/8 = 4166 -> 4096 (multiples of 128).
    assert_eq!((p.settings().block_tokens, p.settings().anchor_tokens, p.settings().passing_tokens), (33_334, 8320, 4096));
}

#[test]
fn every_context_token_is_local_on_exactly_one_host() {
    let mut rng = Rng::fresh();
    for _ in 0..300 {
        let strategy = rng.pick(&Strategy::ALL);
        let i = random_input(&mut rng, strategy);
        let p = match plan(&i) {
            Ok(p) => p,
            Err(e) => panic!("valid input rejected: {e:?} for {i:?}"),
        };
        let mut ranges: Vec<(u64, u64)> =
            p.hosts.iter().flat_map(|h| h.layout.local.iter().map(|r| (r.start, r.end))).filter(|r| r.1 > r.0).collect();
        ranges.sort();
        let mut next = 0;
        for (start, end) in ranges {
            assert_eq!(start, next, "gap or overlap at {start} ({strategy:?}, {} hosts)", p.settings().hosts);
            next = end;
        }
        assert_eq!(next, i.context_tokens, "tokens left over ({strategy:?})");
        assert!(p.hosts.iter().all(|h| h.layout.local_tokens > 0));
    }
}

#[test]
fn passing_keys_only_come_from_earlier_hosts_and_never_reach_anchor_rows() {
    let mut rng = Rng::fresh();
    for _ in 0..200 {
        let i = random_input(&mut rng, Strategy::Apb);
        let p = plan(&i).unwrap();
        for h in &p.hosts {
            let l = &h.layout;
            assert!(l.passing.from_hosts <= l.host, "host {} receives from a later host", l.host);
            let senders: u64 = p.hosts[..l.passing.from_hosts as usize].iter().map(|s| s.layout.passing.sends).sum();
            assert_eq!(l.passing.receives, senders);
            for range in &l.segments {
                if range.rows == RowKind::Anchor {
                    assert!(range.keys.iter().all(|k| k.source == KeySource::Anchor), "anchor rows see {:?}", range.keys);
                }
                // The causal segment comes last, as kernels expect.
                assert!(range.keys[..range.keys.len() - 1].iter().all(|k| k.mask == Mask::Full));
            }
        }
        assert_eq!(p.hosts.last().unwrap().layout.passing.sends, 0, "the last host's block would reach nobody");
    }
}

#[test]
fn the_anchor_embeds_the_query_after_the_prefix_at_positions_from_zero() {
    let mut i = input(65_536, 4, Strategy::Apb);
    i.prefix_tokens = 16;
    i.query_tokens = 100;
    let p = plan(&i).unwrap();
    let a = &p.hosts[2].layout.anchor;
    assert_eq!(a.kind, AnchorKind::Block);
    let parts: Vec<(u64, u64, u64)> = a.parts.iter().map(|x| (x.source_start, x.tokens, x.row_start)).collect();
    // prefix doc[0..16) at 0, query at 16, then doc[16..16+4096-116) at 116.
    assert_eq!(parts, vec![(0, 16, 0), (0, 100, 16), (16, 4096 - 116, 116)]);
    // Host 0 has no anchor; it scores with a probe of the prefix and the query only.
    let probe = &p.hosts[0].layout.anchor;
    assert_eq!((probe.kind, probe.tokens), (AnchorKind::Probe, 116));
    let local_rows = &p.hosts[0].layout.segments[1];
    assert!(local_rows.keys.iter().all(|k| k.source == KeySource::Local), "host 0's local rows see only local keys");
    // Host 0 cannot pass tokens every other host already has in its anchor.
    assert_eq!(p.hosts[0].layout.passing.candidates, 16_384 - (4096 - 100));
}

/// Document positions row `row` of `host`'s local rows sees, when every passing block is
/// a whole earlier block (l_p = l_b): passing blocks first in host order, then local.
fn visible_document(p: &apb_plan::Plan, host: usize, row: u64) -> Vec<u64> {
    let l = &p.hosts[host].layout;
    let mut out = Vec::new();
    for range in l.segments.iter().filter(|r| r.rows == RowKind::Local) {
        if row < range.row_start || row >= range.row_start + range.row_count {
            continue;
        }
        let i = row - range.row_start;
        for k in &range.keys {
            let visible = if k.mask == Mask::Causal { i + 1 + (k.count - range.row_count) } else { k.count };
            for j in k.start..k.start + visible {
                out.push(match k.source {
                    KeySource::Passing => {
                        let block = p.settings().passing_tokens;
                        p.hosts[(j / block) as usize].layout.local[0].start + j % block
                    }
                    KeySource::Local => l.local[0].start + j,
                    KeySource::Document => j,
                    KeySource::Anchor | KeySource::Held => panic!("no {:?} keys expected", k.source),
                });
            }
        }
    }
    out
}

#[test]
fn apb_without_anchor_passing_whole_blocks_is_full_causal_attention() {
    let mut rng = Rng::fresh();
    for _ in 0..20 {
        let hosts = rng.range(1, 9);
        let n = rng.range(hosts * 4, 3000);
        let mut i = input(n, hosts, Strategy::Apb);
        let block = apb_plan::settings::ceil_div(n, hosts);
        i.anchor_tokens = Some(0);
        i.passing_tokens = Some(block);
        let p = match plan(&i) {
            Ok(p) => p,
            Err(_) => continue, // the last host may hold nothing for some (n, hosts)
        };
        for h in 0..p.hosts.len() {
            let l = &p.hosts[h].layout;
            for row in [0, l.local_tokens / 2, l.local_tokens - 1] {
                let pos = l.local[0].start + row;
                let mut seen = visible_document(&p, h, row);
                seen.sort();
                assert_eq!(seen, (0..=pos).collect::<Vec<_>>(), "host {h} row {row}");
            }
        }
        let mut full = input(n, 1, Strategy::Full);
        full.query_tokens = i.query_tokens;
        let f = plan(&full).unwrap();
        let attention = |p: &apb_plan::Plan| p.hosts.iter().map(|h| h.work.attention_flops).sum::<f64>();
        assert!((attention(&p) - attention(&f)).abs() <= 1e-9 * attention(&f));
    }
}

#[test]
fn one_host_apb_is_full_attention() {
    let a = plan(&input(50_000, 1, Strategy::Apb)).unwrap();
    let f = plan(&input(50_000, 1, Strategy::Full)).unwrap();
    assert_eq!(a.hosts[0].layout.segments, f.hosts[0].layout.segments);
    assert_eq!(a.prefill_s, f.prefill_s);
}

#[test]
fn star_is_apb_with_the_first_block_as_anchor_and_no_passing() {
    let mut rng = Rng::fresh();
    for _ in 0..50 {
        let mut star = random_input(&mut rng, Strategy::Star);
        star.query_in_anchor = rng.next() % 2 == 0;
        let s = match plan(&star) {
            Ok(s) => s,
            Err(e) => panic!("{e:?}"),
        };
        let mut apb = star.clone();
        apb.strategy = Strategy::Apb;
        // The same sizing as star's (apb alone balances by default).
        apb.balanced = Some(star.balances());
        apb.anchor_tokens = Some(if s.settings().hosts > 1 { s.settings().block_tokens } else { 0 });
        apb.passing_tokens = Some(0);
        let a = plan(&apb).unwrap();
        let layouts = |p: &apb_plan::Plan| p.hosts.iter().map(|h| h.layout.clone()).collect::<Vec<_>>();
        assert_eq!(layouts(&s), layouts(&a));
        assert_eq!(s.prefill_s, a.prefill_s);
    }
}

#[test]
fn balanced_layouts_cover_every_token_once_and_finish_together() {
    let mut rng = Rng::fresh();
    for _ in 0..40 {
        let mut i = random_input(&mut rng, Strategy::Apb);
        i.hosts = rng.range(2, 16);
        i.context_tokens = rng.range(20_000, 400_000);
        i.balanced = Some(true);
        let p = plan(&i).unwrap();
        let sizes: Vec<u64> = p.hosts.iter().map(|h| h.layout.local_tokens).collect();
        assert_eq!(sizes.iter().sum::<u64>(), i.context_tokens);
        let mut next = 0;
        for h in &p.hosts {
            assert_eq!(h.layout.local[0].start, next);
            next = h.layout.local[0].end;
        }
        let b = p.balance.as_ref().unwrap();
        assert!(b.balanced_prefill_s <= b.even_prefill_s * 1.001, "balancing made it slower: {b:?}");
    }
}

#[test]
fn zigzag_gives_each_host_a_chunk_from_each_end() {
    let p = plan(&input(16_000, 4, Strategy::RingZigzag)).unwrap();
    let chunks: Vec<Vec<(u64, u64)>> =
        p.hosts.iter().map(|h| h.layout.local.iter().map(|r| (r.start, r.end)).collect()).collect();
    assert_eq!(chunks[0], vec![(0, 2000), (14_000, 16_000)]);
    assert_eq!(chunks[3], vec![(6000, 8000), (8000, 10_000)]);
}
#[test]
fn balancing_long_contexts_evens_out_host_times() {
    for (n, hosts) in [(131_072, 8), (262_144, 4), (1_048_576, 16)] {
        let mut i = input(n, hosts, Strategy::Apb);
        i.balanced = Some(true);
        let p = plan(&i).unwrap();
        let gain = p.balance.as_ref().unwrap().gain();
        assert!(gain > 1.05, "{n} tokens on {hosts} hosts: gain {gain}");
        let times: Vec<f64> = p.hosts.iter().map(|h| h.phases.compute()).collect();
        let (lo, hi) = times.iter().fold((f64::MAX, 0.0f64), |(lo, hi), &t| (lo.min(t), hi.max(t)));
        assert!(hi / lo < 1.03, "hosts still differ by {:.1}%", (hi / lo - 1.0) * 100.0);
        // The first host, which has no anchor and receives nothing, takes the most tokens.
        assert!(p.hosts[0].layout.local_tokens > p.hosts[hosts as usize - 1].layout.local_tokens);
    }
}

/// The document position of a row of a block made of `ranges` stacked in order.
fn position(ranges: &[Range], row: u64) -> Option<u64> {
    let mut first = 0;
    for r in ranges {
        if row < first + r.len() {
            return Some(r.start + row - first);
        }
        first += r.len();
    }
    None
}

/// Ring strategies: over the H steps of the ring, every local row of every host sees each
/// earlier-or-equal document token exactly once (so merging partial results is exact
/// attention) and never a later one. At step s host h holds the block of host (h - s) mod H.
#[test]
fn ring_steps_show_each_row_every_earlier_token_exactly_once() {
    let mut rng = Rng::fresh();
    for _ in 0..60 {
        let strategy = rng.pick(&[Strategy::Ring, Strategy::RingZigzag]);
        let hosts = rng.range(1, 12);
        // Small contexts, so every (row, key) pair can be counted; padding included.
        let n = rng.range(2 * hosts, 1500);
        let mut i = input(n, hosts, strategy);
        i.query_tokens = 1;
        i.prefix_tokens = 0;
        let p = match plan(&i) {
            Ok(p) => p,
            Err(_) => continue, // a host may hold nothing for some (n, hosts)
        };
        let h_count = p.hosts.len() as u64;
        for host in &p.hosts {
            let l = &host.layout;
            let schedule: Vec<_> = l.ring_schedule().collect();
            let sources: Vec<u64> = schedule.iter().map(|(s, _)| *s).collect();
            let expected: Vec<u64> = (0..h_count).map(|s| (l.host + h_count - s) % h_count).collect();
            assert_eq!(sources, expected, "host {} ({strategy:?}, {h_count} hosts)", l.host);
            // Runs are consecutive and few: the plan stays linear in the hosts.
            let mut next = 0;
            for run in &l.ring_steps {
                assert_eq!(run.first_step, next);
                assert!(run.steps > 0);
                next += run.steps;
            }
            assert!(l.ring_steps.len() <= 3, "host {} has {} runs", l.host, l.ring_steps.len());
            // seen[row][position]: how often the row attends to that document token.
            let mut seen = vec![vec![0u32; n as usize]; l.local_tokens as usize];
            for (source, ranges) in &schedule {
                let held = &p.hosts[*source as usize].layout.local;
                // Each step covers every local row once, in the rows of `segments`.
                let rows: Vec<(u64, u64)> = ranges.iter().map(|r| (r.row_start, r.row_count)).collect();
                let plan_rows: Vec<(u64, u64)> = l.segments.iter().map(|r| (r.row_start, r.row_count)).collect();
                assert_eq!(rows, plan_rows);
                for range in ranges.iter() {
                    if let Some((last, before)) = range.keys.split_last() {
                        assert!(before.iter().all(|k| k.mask == Mask::Full), "the causal segment comes last");
                        if last.mask == Mask::Causal {
                            assert_eq!(last.count, range.row_count, "a causal block is the query chunk itself");
                        }
                    }
                    for key in &range.keys {
                        assert_eq!(key.source, KeySource::Held);
                        for i in 0..range.row_count {
                            let visible = if key.mask == Mask::Causal { i + 1 + (key.count - range.row_count) } else { key.count };
                            for j in key.start..key.start + visible {
                                let pos = position(held, j).expect("key row inside the held block");
                                seen[(range.row_start + i) as usize][pos as usize] += 1;
                            }
                        }
                    }
                }
            }
            for (row, counts) in seen.iter().enumerate() {
                let pos = position(&l.local, row as u64).unwrap() as usize;
                assert!(counts[..=pos].iter().all(|&c| c == 1), "host {} row {row} (position {pos}) misses or repeats a token", l.host);
                assert!(counts[pos + 1..].iter().all(|&c| c == 0), "host {} row {row} sees a later token", l.host);
            }
        }
    }
}

#[test]
fn only_ring_strategies_have_ring_steps() {
    let mut rng = Rng::fresh();
    for _ in 0..100 {
        let strategy = rng.pick(&Strategy::ALL);
        let p = plan(&random_input(&mut rng, strategy)).unwrap();
        let ring = matches!(strategy, Strategy::Ring | Strategy::RingZigzag);
        for h in &p.hosts {
            let steps: u64 = h.layout.ring_steps.iter().map(|r| r.steps).sum();
            assert_eq!(steps, if ring { p.hosts.len() as u64 } else { 0 }, "{strategy:?}");
        }
    }
}

#[test]
fn ring_steps_stay_few_on_many_hosts() {
    for strategy in [Strategy::Ring, Strategy::RingZigzag] {
        // One token of padding: the last chunk is short, as with most context lengths.
        let p = plan(&input(4096 * 2 * 300 - 1, 4096, strategy)).unwrap();
        assert!(p.hosts.iter().all(|h| h.layout.ring_steps.len() <= 3));
    }
}

/// The rows a host may not pass are exactly those holding document tokens the anchor
/// already gives every receiver, and the candidates are the rest of its block.
#[test]
fn excluded_rows_are_the_local_rows_the_anchor_already_holds() {
    let mut rng = Rng::fresh();
    for _ in 0..200 {
        let strategy = rng.pick(&Strategy::ALL);
        let mut i = random_input(&mut rng, strategy);
        i.context_tokens = i.context_tokens.min(60_000).max(i.hosts * 2 * 130);
        let p = plan(&i).unwrap();
        let anchor = anchor_document(&i, p.settings());
        for h in &p.hosts {
            let l = &h.layout;
            let ex = l.passing.excluded;
            assert!(ex.start <= ex.end && ex.end <= l.local_tokens, "host {}: {ex:?}", l.host);
            for row in 0..l.local_tokens {
                let pos = position(&l.local, row).unwrap();
                assert_eq!(ex.contains(row), anchor.contains(pos), "host {} row {row} (position {pos}, {strategy:?})", l.host);
            }
            assert_eq!(l.passing.candidates, l.local_tokens - ex.len());
        }
        if strategy.has_anchor() && p.hosts.len() > 1 && p.settings().anchor_tokens > 0 {
            // Host 0 starts the document, so the anchor's document tokens are its first rows.
            let ex = p.hosts[0].layout.passing.excluded;
            assert_eq!((ex.start, ex.len()), (0, anchor.len().min(p.hosts[0].layout.local_tokens)));
        }
    }
}

#[test]
fn apb_blocks_are_balanced_by_default_and_every_other_strategy_splits_evenly() {
    for (strategy, hosts, balances) in [
        (Strategy::Apb, 8, true),
        (Strategy::Star, 8, false),
        (Strategy::Apb, 1, false),
        (Strategy::Ring, 8, false),
        (Strategy::RingZigzag, 8, false),
        (Strategy::Ulysses, 8, false),
        (Strategy::Full, 1, false),
    ] {
        let i = input(131_072, hosts, strategy);
        let default = PlanInput { balanced: None, ..i.clone() };
        assert_eq!(default.balances(), balances, "{strategy:?} on {hosts} hosts");
        let p = plan(&default).unwrap();
        assert_eq!(p.balance.is_some(), balances, "{strategy:?} on {hosts} hosts");
        // Asking for the even split always gives it.
        let even = plan(&PlanInput { balanced: Some(false), ..i }).unwrap();
        assert!(even.balance.is_none());
        let sizes: Vec<u64> = even.hosts.iter().map(|h| h.layout.local_tokens).collect();
        assert!(sizes.iter().all(|&s| s == sizes[0]) || strategy == Strategy::RingZigzag, "{strategy:?}: {sizes:?}");
    }
    // Star balances when asked.
    assert!(plan(&PlanInput { balanced: Some(true), ..input(131_072, 8, Strategy::Star) }).unwrap().balance.is_some());
    // Balancing is asked for where it cannot apply: an error that says so, not a silent even split.
    let e = plan(&PlanInput { balanced: Some(true), ..input(131_072, 8, Strategy::Ring) }).unwrap_err();
    assert_eq!(e.path, "balanced");
}

#[test]
fn settings_made_for_even_blocks_keep_the_even_split_by_default_and_refuse_balancing_when_asked() {
    // A passing block of a whole even block: later hosts' balanced blocks are shorter.
    let mut i = input(131_072, 8, Strategy::Apb);
    i.balanced = None;
    i.anchor_tokens = Some(0);
    i.passing_tokens = Some(16_384);
    let p = plan(&i).unwrap();
    assert!(p.hosts.iter().all(|h| h.layout.local_tokens == 16_384));
    assert_eq!(p.balance.as_ref().map(|b| b.gain()), Some(1.0));
    assert!(p.settings().warnings.is_empty(), "nobody asked for balanced blocks: {:?}", p.settings().warnings);
    let e = plan(&PlanInput { balanced: Some(true), ..i }).unwrap_err();
    assert_eq!((e.code, e.path.as_str()), ("INFEASIBLE", "passingTokens"));
}
