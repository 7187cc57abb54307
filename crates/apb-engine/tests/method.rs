//! The method, as a specification: exact strategies equal full attention, APB degenerates
//! to full attention when it passes everything, merged decoding equals single-host decoding.

mod common;

use apb_engine::comm::InProcess;
use apb_engine::config::Architecture;
use apb_engine::cpu::backend::Cpu;
use apb_engine::decode::decode;
use apb_engine::prefill::KvCache;
use apb_engine::timing::HostTimings;
use apb_engine::{generate, generate_with, Model, Output, Request, Transfer};
use apb_plan::input::Strategy;
use common::*;


fn run(model: &Model<Cpu>, r: &Request) -> Output {
    generate(model, r, &|_| true).unwrap_or_else(|e| panic!("{e:?}"))
}

fn setup(rng: &mut Rng, arch: Architecture) -> (Model<Cpu>, Request) {
    let c = tiny_config(arch);
    let model = cpu_model(&c, &random_tensors(&c, rng));
    let n = rng.range(150, 400);
    let q = rng.range(2, 6);
    let mut r = full_request(rng.tokens(n, c.vocab), rng.tokens(q, c.vocab));
    r.prefix_tokens = rng.range(0, 3);
    r.max_new_tokens = 4;
    (model, r)
}

#[test]
fn ring_and_zigzag_ring_equal_full_attention() {
    let mut rng = Rng::fresh();
    for arch in [Architecture::Llama, Architecture::Qwen2] {
        let (model, full) = setup(&mut rng, arch);
        let expected = run(&model, &full);
        for strategy in [Strategy::Ring, Strategy::RingZigzag] {
            let hosts = rng.range(2, 5);
            let r = Request { strategy, hosts, ..full.clone() };
            assert_same(&run(&model, &r), &expected, &format!("{strategy:?} on {hosts} hosts"));
        }
    }
}

#[test]
fn blocks_through_host_memory_give_what_blocks_handed_over_in_place_give() {
    let mut rng = Rng::fresh();
    let (model, full) = setup(&mut rng, Architecture::Llama);
    for strategy in [Strategy::Apb, Strategy::Ring, Strategy::RingZigzag] {
        let r = Request { strategy, hosts: rng.range(2, 5), ..full.clone() };
        let handed = run(&model, &r);
        let bytes = generate_with(&model, &r, &|_| true, Transfer::Bytes).unwrap_or_else(|e| panic!("{e:?}"));
        assert_same(&bytes, &handed, &format!("{strategy:?} on {} hosts, blocks as bytes", r.hosts));
    }
}

#[test]
fn apb_without_anchor_passing_whole_blocks_equals_full() {
    let mut rng = Rng::fresh();
    let (model, full) = setup(&mut rng, Architecture::Llama);
    let expected = run(&model, &full);
    for hosts in [2, 3, 4] {
        let block = full.context.len().div_ceil(hosts);
        // Even blocks, so a passing block of l_b is every earlier host's whole block.
        let r = Request { strategy: Strategy::Apb, hosts, anchor_tokens: Some(0), passing_tokens: Some(block), balanced: Some(false), ..full.clone() };
        assert_same(&run(&model, &r), &expected, &format!("apb l_a=0 l_p=l_b on {hosts} hosts"));
    }
}

#[test]
fn apb_on_one_host_is_full_attention() {
    let mut rng = Rng::fresh();
    let (model, full) = setup(&mut rng, Architecture::Qwen2);
    let r = Request { strategy: Strategy::Apb, hosts: 1, ..full.clone() };
    assert_same(&run(&model, &r), &run(&model, &full), "apb on 1 host");
}

#[test]
fn star_runs_with_the_first_block_as_every_later_hosts_anchor() {
    let mut rng = Rng::fresh();
    let (model, full) = setup(&mut rng, Architecture::Llama);
    let expected = run(&model, &full);
    let out = run(&model, &Request { strategy: Strategy::Star, hosts: 3, ..full.clone() });
    assert_eq!((out.anchor_tokens, out.passing_tokens), (out.block_tokens, 0));
    let err = rel_error32(&out.first_logits, &expected.first_logits);
    assert!(err.is_finite() && err < 1.0, "star logits are far from full: {err}");
}

#[test]
fn apb_with_default_settings_runs_and_stays_close_to_full() {
    let mut rng = Rng::fresh();
    let (model, full) = setup(&mut rng, Architecture::Llama);
    let expected = run(&model, &full);
    let out = run(&model, &Request { strategy: Strategy::Apb, hosts: 4, ..full.clone() });
    assert_eq!(out.hosts.len(), 4);
    assert!(out.passing_tokens > 0 && out.anchor_tokens > 0);
    let err = rel_error32(&out.first_logits, &expected.first_logits);
    assert!(err.is_finite() && err < 1.0, "apb logits are far from full: {err}");
}

#[test]
fn merged_decode_over_hosts_equals_single_host_decode_over_the_same_cache() {
    let mut rng = Rng::fresh();
    let c = tiny_config(Architecture::Qwen2);
    let model = cpu_model(&c, &random_tensors(&c, &mut rng));
    let n = rng.range(30, 90);
    let kvw = c.kv_heads * c.head_dim;
    let k: Vec<Vec<f32>> = (0..c.layers).map(|_| rng.vec(n * kvw, 1.0)).collect();
    let v: Vec<Vec<f32>> = (0..c.layers).map(|_| rng.vec(n * kvw, 1.0)).collect();
    let tokens = rng.tokens(3, c.vocab);
    let positions: Vec<u32> = (n as u32..n as u32 + 3).collect();

    let mut whole = KvCache::<Cpu> { k: k.clone(), v: v.clone(), tokens: n };
    let mut single = InProcess::group(1);
    let expected = decode(&model, &mut single[0], &mut whole, &tokens, &positions, 0, "decode", &mut HostTimings::new(0)).unwrap();

    for hosts in [2, 3] {
        let cuts: Vec<usize> = (0..=hosts).map(|h| h * n / hosts).collect();
        let results: Vec<Vec<f32>> = std::thread::scope(|s| {
            let handles: Vec<_> = InProcess::group(hosts)
                .into_iter()
                .enumerate()
                .map(|(h, mut comm)| {
                    let (lo, hi) = (cuts[h], cuts[h + 1]);
                    let mut cache = KvCache::<Cpu> {
                        k: k.iter().map(|x| x[lo * kvw..hi * kvw].to_vec()).collect(),
                        v: v.iter().map(|x| x[lo * kvw..hi * kvw].to_vec()).collect(),
                        tokens: hi - lo,
                    };
                    let (model, tokens, positions) = (&model, &tokens, &positions);
                    s.spawn(move || decode(model, &mut comm, &mut cache, tokens, positions, 0, "decode", &mut HostTimings::new(h)).unwrap())
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for logits in &results {
            let err = rel_error32(logits, &expected);
            assert!(err < 1e-5, "{hosts} hosts: merged decode differs by {err}");
        }
    }
}
