//! Hosts joined over TCP (the data plane of CPU hosts that are processes) give exactly what
//! the same hosts emulated in one process give, for every strategy; a host that fails mid-
//! request makes the others fail with an error naming it, instead of waiting forever.

mod common;

use apb_engine::config::Architecture;
use apb_engine::{generate, Request};
use apb_plan::input::Strategy;
use common::*;

#[test]
fn every_strategy_over_tcp_equals_the_same_hosts_emulated() {
    let mut rng = Rng::fresh();
    let c = tiny_config(Architecture::Llama);
    let model = cpu_model(&c, &random_tensors(&c, &mut rng));
    let (n, q) = (rng.range(150, 400), rng.range(2, 6));
    let mut base = full_request(rng.tokens(n, c.vocab), rng.tokens(q, c.vocab));
    base.prefix_tokens = rng.range(0, 3);
    base.max_new_tokens = 4;
    for (i, strategy) in [Strategy::Full, Strategy::Apb, Strategy::Star, Strategy::Ring, Strategy::RingZigzag, Strategy::Ulysses].into_iter().enumerate() {
        let hosts = match strategy {
            Strategy::Full => 1,
            // The hosts must share tiny_config's 4 query heads.
            Strategy::Ulysses => 2 * rng.range(1, 2),
            _ => rng.range(2, 5),
        };
        let r = Request { strategy, hosts, ..base.clone() };
        let emulated = generate(&model, &r, &|_| true).unwrap();
        let outputs = run_hosts(&model, &r, &mut tcp_group(hosts, &format!("g{i}")));
        for (rank, out) in outputs.into_iter().enumerate() {
            let out = out.unwrap_or_else(|e| panic!("{strategy:?} host {rank}: {e:?}"));
            assert_eq!(out.tokens, emulated.tokens, "{strategy:?} on {hosts} hosts: host {rank}'s tokens");
            let err = rel_error32(&out.first_logits, &emulated.first_logits);
            assert!(err <= 1e-5, "{strategy:?} on {hosts} hosts: host {rank}'s first-token logits differ by {err}");
            assert_eq!(out.timings.host, rank);
            assert!(out.timings.get("wait") == 0.0, "real hosts never wait for compute turns");
            if matches!(strategy, Strategy::Full | Strategy::Star) {
                // Nothing moves during their prefill; the query pass's merge counts as query.
                assert_eq!(out.timings.get("comm"), 0.0, "{strategy:?}: comm outside prefill counted as prefill");
            }
        }
    }
}

#[test]
fn a_host_that_fails_is_named_by_the_others() {
    let mut rng = Rng::fresh();
    let c = tiny_config(Architecture::Llama);
    let model = cpu_model(&c, &random_tensors(&c, &mut rng));
    let mut r = full_request(rng.tokens(300, c.vocab), rng.tokens(3, c.vocab));
    r.strategy = Strategy::Apb;
    r.hosts = 3;
    r.max_new_tokens = 2;
    let mut comms = tcp_group(3, "failing");
    let dead = comms.remove(2);
    drop(dead); // host 2 is gone before the request reaches it
    let errors: Vec<_> = run_hosts(&model, &r, &mut comms).into_iter().map(|o| o.expect_err("a host whose peer is gone cannot finish")).collect();
    assert!(errors.iter().all(|e| e.code == "COMM"), "{errors:?}");
    // A survivor that lost its link to host 2 names it; the others may only see that survivor
    // shut down (the control plane names the root cause to the caller).
    assert!(errors.iter().any(|e| e.message.contains("host 2 closed its connection")), "{errors:?}");
}

#[test]
fn a_request_for_another_group_size_is_refused_before_any_exchange() {
    let mut rng = Rng::fresh();
    let c = tiny_config(Architecture::Llama);
    let model = cpu_model(&c, &random_tensors(&c, &mut rng));
    let mut r = full_request(rng.tokens(200, c.vocab), rng.tokens(3, c.vocab));
    r.strategy = Strategy::Apb;
    r.hosts = 3;
    let mut comms = tcp_group(2, "sizes");
    let outputs = run_hosts(&model, &r, &mut comms);
    for out in outputs {
        let e = out.err().unwrap();
        assert_eq!(e.code, "INVALID_INPUT");
        assert!(e.message.contains("this group has 2"), "{}", e.message);
    }
    // The group is still usable.
    r.hosts = 2;
    assert!(run_hosts(&model, &r, &mut comms).into_iter().all(|o| o.is_ok()));
}
