//! Whole-model logits of the CPU engine against the float64 reference forward.

mod common;

use apb_engine::config::Architecture;
use apb_engine::sample::Sampling;
use apb_engine::{generate, Request};
use apb_plan::input::{Scorer, Strategy};
use common::*;

#[test]
fn full_prefill_logits_match_the_float64_reference() {
    let mut rng = Rng::fresh();
    for (arch, tied, scaled) in [
        (Architecture::Llama, false, false),
        (Architecture::Llama, true, true),
        (Architecture::Qwen2, false, false),
        (Architecture::Mistral, true, false),
    ] {
        let mut c = tiny_config(arch);
        c.tied_embeddings = tied;
        if scaled {
            c.rope_scaling = llama31_scaling();
        }
        let tensors = random_tensors(&c, &mut rng);
        let model = cpu_model(&c, &tensors);
        let n = rng.range(20, 120);
        let context = rng.tokens(n, c.vocab);
        let q = rng.range(1, 6);
        let query = rng.tokens(q, c.vocab);
        let out = generate(&model, &full_request(context.clone(), query.clone()), &|_| true).unwrap();
        let all: Vec<u32> = context.iter().chain(&query).copied().collect();
        let expected = reference_logits(&c, &tensors, &all);
        let err = rel_error(&out.first_logits, &expected);
        assert!(err < 1e-4, "{arch:?} tied={tied} scaled={scaled}: relative error {err}");
    }
}

/// Generates `max_new_tokens` greedily from a fresh tiny model (40 context and 3 query
/// tokens) and checks every token from the `from`-th on against the float64 reference over
/// all the tokens before it.
fn greedy_generation_follows_the_reference(max_new_tokens: usize, from: usize) {
    let mut rng = Rng::fresh();
    let c = tiny_config(Architecture::Llama);
    let tensors = random_tensors(&c, &mut rng);
    let model = cpu_model(&c, &tensors);
    let context = rng.tokens(40, c.vocab);
    let query = rng.tokens(3, c.vocab);
    let mut r = full_request(context.clone(), query.clone());
    r.max_new_tokens = max_new_tokens;
    let out = generate(&model, &r, &|_| true).unwrap();
    assert_eq!(out.tokens.len(), max_new_tokens);
    let mut seq: Vec<u32> = context.iter().chain(&query).copied().collect();
    seq.extend(&out.tokens[..from]);
    for (i, &t) in out.tokens.iter().enumerate().skip(from) {
        let logits = reference_logits(&c, &tensors, &seq);
        let mut sorted = logits.clone();
        sorted.sort_by(|a, b| b.total_cmp(a));
        let best = logits.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0 as u32;
        // Only a near-tie could make float32 pick differently.
        if sorted[0] - sorted[1] > 1e-3 {
            assert_eq!(t, best, "token {} of {max_new_tokens}", i + 1);
        }
        seq.push(t);
    }
}

#[test]
fn generated_tokens_follow_the_reference_greedily() {
    greedy_generation_follows_the_reference(5, 0);
}

#[test]
fn generation_past_the_reserved_cache_rows_still_follows_the_reference() {
    // The query pass reserves at most 256 spare rows here; 300 tokens outgrow them, and the
    // cache grows again mid-generation. The tokens around and after the growth are checked.
    greedy_generation_follows_the_reference(300, 250);
}

#[test]
fn stop_tokens_and_the_token_limit_end_generation() {
    let mut rng = Rng::fresh();
    let c = tiny_config(Architecture::Llama);
    let model = cpu_model(&c, &random_tensors(&c, &mut rng));
    let mut r = full_request(rng.tokens(30, c.vocab), rng.tokens(2, c.vocab));
    r.max_new_tokens = 6;
    let free = generate(&model, &r, &|_| true).unwrap();
    assert_eq!(free.tokens.len(), 6);
    r.stop_tokens = vec![free.tokens[2]];
    let stopped = generate(&model, &r, &|_| true).unwrap();
    let first_stop = free.tokens.iter().position(|t| *t == free.tokens[2]).unwrap();
    assert_eq!(stopped.tokens, free.tokens[..=first_stop].to_vec());
    // The caller can stop it too.
    r.stop_tokens.clear();
    let seen = std::sync::atomic::AtomicUsize::new(0);
    let out = generate(&model, &r, &|_| seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 1).unwrap();
    assert_eq!(out.tokens.len(), 2);
}

#[test]
fn sampling_with_a_seed_is_reproducible_and_top_p_tiny_is_greedy() {
    let mut rng = Rng::fresh();
    let c = tiny_config(Architecture::Llama);
    let model = cpu_model(&c, &random_tensors(&c, &mut rng));
    let mut r = full_request(rng.tokens(30, c.vocab), rng.tokens(2, c.vocab));
    r.max_new_tokens = 8;
    let greedy = generate(&model, &r, &|_| true).unwrap().tokens;
    r.sampling = Sampling { temperature: 1.0, top_p: 1e-6, seed: 3 };
    assert_eq!(generate(&model, &r, &|_| true).unwrap().tokens, greedy);
    r.sampling = Sampling { temperature: 1.5, top_p: 0.95, seed: 42 };
    let a = generate(&model, &r, &|_| true).unwrap().tokens;
    assert_eq!(a, generate(&model, &r, &|_| true).unwrap().tokens);
}

#[test]
fn bad_requests_are_errors_not_panics() {
    let mut rng = Rng::fresh();
    let c = tiny_config(Architecture::Llama);
    let model = cpu_model(&c, &random_tensors(&c, &mut rng));
    let cases = [
        (full_request(vec![], vec![1]), "context"),
        (full_request(vec![1, 2], vec![]), "query"),
        (full_request(vec![1, 500], vec![1]), "tokens"),
        (Request { hosts: 0, ..full_request(vec![1, 2], vec![1]) }, "hosts"),
        (Request { strategy: Strategy::Apb, hosts: 5, ..full_request(vec![1, 2, 3], vec![1]) }, "hosts"),
        (Request { strategy: Strategy::Apb, hosts: 2, scorer: Scorer::RetainingHeads, ..full_request(vec![1; 40], vec![1]) }, "scorer"),
    ];
    for (r, path) in cases {
        let e = generate(&model, &r, &|_| true).unwrap_err();
        assert_eq!(e.path, path, "{e:?}");
        assert!(e.message.len() > 10);
    }
}
