//! Ulysses is exact: splitting heads across hosts (after an all-to-all over the sequence)
//! gives what full attention on one host gives, whether each host has its own KV heads or
//! shares one with others, with blocks handed over in place or as bytes, emulated or over
//! TCP; head counts the hosts cannot share are the planner's refusal, not a panic.

mod common;

use apb_engine::config::{Architecture, ModelConfig};
use apb_engine::cpu::backend::Cpu;
use apb_engine::{generate, generate_with, Model, Output, Request, Transfer};
use apb_plan::input::Strategy;
use common::*;

fn run(model: &Model<Cpu>, r: &Request) -> Output {
    generate(model, r, &|_| true).unwrap_or_else(|e| panic!("{:?} on {} hosts: {e:?}", r.strategy, r.hosts))
}

/// A model of `c` and a full-attention request whose odd context leaves the last host a
/// shorter block on 2 and 4 hosts.
fn setup(rng: &mut Rng, c: &ModelConfig) -> (Model<Cpu>, Request) {
    let model = cpu_model(c, &random_tensors(c, rng));
    let n = rng.range(75, 200) * 2 + 1;
    let q = rng.range(2, 6);
    let mut r = full_request(rng.tokens(n, c.vocab), rng.tokens(q, c.vocab));
    r.prefix_tokens = rng.range(0, 3);
    r.max_new_tokens = 4;
    (model, r)
}

/// 8 query heads over 4 KV heads: on 2 hosts each host has 2 KV heads and a GQA group of 4.
fn wide_config() -> ModelConfig {
    ModelConfig { heads: 8, kv_heads: 4, hidden: 64, ..tiny_config(Architecture::Llama) }
}

#[test]
fn ulysses_equals_full_attention_with_own_and_shared_kv_heads() {
    let mut rng = Rng::fresh();
    // tiny_config: 4 query heads over 2 KV heads. 2 hosts: a KV head each; 4 hosts: more hosts
    // than KV heads, each KV head shared by 2 hosts.
    for (c, hosts) in [(tiny_config(Architecture::Llama), [2, 4]), (tiny_config(Architecture::Qwen2), [2, 4]), (wide_config(), [2, 8])] {
        let (model, full) = setup(&mut rng, &c);
        let expected = run(&model, &full);
        for hosts in hosts {
            let r = Request { strategy: Strategy::Ulysses, hosts, ..full.clone() };
            let out = run(&model, &r);
            assert_same(&out, &expected, &format!("ulysses on {hosts} hosts, {} heads over {} KV heads", c.heads, c.kv_heads));
            let rows: Vec<usize> = out.hosts.iter().map(|t| t.prefill_rows).collect();
            assert_eq!(rows.iter().sum::<usize>(), full.context.len(), "every host computes its own rows only: {rows:?}");
            assert!(rows.last() < rows.first(), "the odd context leaves the last host a shorter block: {rows:?}");
            assert!(out.hosts.iter().all(|t| t.get("attention") > 0.0 && t.get("comm") > 0.0), "every host attends and moves its blocks");
        }
    }
}

#[test]
fn ulysses_through_host_memory_gives_what_handing_over_in_place_gives() {
    let mut rng = Rng::fresh();
    let (model, full) = setup(&mut rng, &tiny_config(Architecture::Llama));
    for hosts in [2, 4] {
        let r = Request { strategy: Strategy::Ulysses, hosts, ..full.clone() };
        let bytes = generate_with(&model, &r, &|_| true, Transfer::Bytes).unwrap_or_else(|e| panic!("{e:?}"));
        assert_same(&bytes, &run(&model, &r), &format!("ulysses on {hosts} hosts, blocks as bytes"));
    }
}

#[test]
fn ulysses_on_one_host_is_full_attention() {
    let mut rng = Rng::fresh();
    let (model, full) = setup(&mut rng, &tiny_config(Architecture::Qwen2));
    assert_same(&run(&model, &Request { strategy: Strategy::Ulysses, hosts: 1, ..full.clone() }), &run(&model, &full), "ulysses on 1 host");
}

#[test]
fn heads_the_hosts_cannot_share_are_the_planners_refusal() {
    let mut rng = Rng::fresh();
    let (model, full) = setup(&mut rng, &tiny_config(Architecture::Llama));
    // 4 query heads cannot be split over 3 hosts; 8 hosts would leave some without a head.
    for hosts in [3, 8] {
        let e = generate(&model, &Request { strategy: Strategy::Ulysses, hosts, ..full.clone() }, &|_| true).expect_err("refused");
        assert_eq!((e.code, e.path.as_str()), ("INFEASIBLE", "hosts"), "{hosts} hosts: {e:?}");
        assert!(e.message.contains("ulysses splits heads"), "{}", e.message);
    }
}

#[test]
fn ulysses_over_tcp_equals_full_attention() {
    let mut rng = Rng::fresh();
    let (model, full) = setup(&mut rng, &tiny_config(Architecture::Llama));
    let expected = run(&model, &full);
    for hosts in [2, 4] {
        let r = Request { strategy: Strategy::Ulysses, hosts, ..full.clone() };
        let outputs = run_hosts(&model, &r, &mut tcp_group(hosts, &format!("ulysses{hosts}")));
        for (rank, out) in outputs.into_iter().enumerate() {
            let out = out.unwrap_or_else(|e| panic!("host {rank} of {hosts}: {e:?}"));
            assert_eq!(out.tokens, expected.tokens, "host {rank} of {hosts}: tokens");
            let err = rel_error32(&out.first_logits, &expected.first_logits);
            assert!(err < 1e-5, "host {rank} of {hosts}: first-token logits differ by {err}");
            assert!(out.timings.get("comm") > 0.0 && out.timings.get("wait") == 0.0, "real hosts move data and never wait for turns");
        }
    }
}
