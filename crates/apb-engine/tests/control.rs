//! A request under the caller's control: cancelled from another thread it stops within one
//! layer and leaves the model usable; each host reports each layer of prefill once; timings
//! put the first token after prefill; NaN or Inf logits are refused, never sampled.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use apb_engine::config::Architecture;
use apb_engine::cpu::backend::Cpu;
use apb_engine::weights::Cancellable;
use apb_engine::{generate, generate_controlled, Cancel, Hooks, LayerDone, Model, Request, Transfer};
use apb_plan::input::Strategy;
use common::*;

fn deep_model(rng: &mut Rng, layers: usize) -> (Model<Cpu>, Request) {
    let mut c = tiny_config(Architecture::Llama);
    c.layers = layers;
    let model = cpu_model(&c, &random_tensors(&c, rng));
    let (n, q) = (rng.range(200, 400), rng.range(2, 5));
    let mut r = full_request(rng.tokens(n, c.vocab), rng.tokens(q, c.vocab));
    r.max_new_tokens = 3;
    (model, r)
}

#[test]
fn a_cancel_stops_every_host_within_one_layer_and_the_model_stays_usable() {
    let mut rng = Rng::fresh();
    let layers = rng.range(8, 12);
    let (model, full) = deep_model(&mut rng, layers);
    for strategy in [Strategy::Apb, Strategy::Ring, Strategy::Full] {
        let hosts = if strategy == Strategy::Full { 1 } else { rng.range(2, 4) };
        let r = Request { strategy, hosts, ..full.clone() };
        let before = generate(&model, &r, &|_| true).unwrap_or_else(|e| panic!("{e:?}"));
        let cancel = Cancel::new();
        let stop_after = rng.range(1, layers / 2);
        let seen = Mutex::new(Vec::<LayerDone>::new());
        let after_cancel = AtomicUsize::new(0);
        let on_layer = |d: LayerDone| {
            if cancel.is_cancelled() {
                after_cancel.fetch_add(1, Ordering::SeqCst);
            }
            seen.lock().unwrap().push(d);
            if d.layer == stop_after {
                cancel.cancel();
            }
        };
        let tokens = AtomicUsize::new(0);
        let hooks = Hooks { cancel: Some(&cancel), on_layer: Some(&on_layer) };
        let e = generate_controlled(&model, &r, &|_| tokens.fetch_add(1, Ordering::SeqCst) < usize::MAX, Transfer::Handoff, hooks).unwrap_err();
        assert_eq!(e.code, "CANCELLED", "{strategy:?}: {e:?}");
        assert_eq!(tokens.load(Ordering::SeqCst), 0, "{strategy:?}: no token after a cancel in prefill");
        // Each host finishes at most the layer it was in when the flag was set.
        let most = seen.lock().unwrap().iter().map(|d| d.layer).max().unwrap_or(0);
        assert!(most <= stop_after + 1, "{strategy:?} on {hosts} hosts: a host reached layer {most} after a cancel at layer {stop_after}");
        assert!(after_cancel.load(Ordering::SeqCst) <= hosts, "{strategy:?}: {} layers ended after the cancel", after_cancel.load(Ordering::SeqCst));
        // The model is untouched: the same request gives the same answer.
        let again = generate(&model, &r, &|_| true).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(again.tokens, before.tokens, "{strategy:?}");
        assert_eq!(again.first_logits, before.first_logits, "{strategy:?}");
    }
}

#[test]
fn a_cancel_before_the_call_does_no_work() {
    let mut rng = Rng::fresh();
    let (model, full) = deep_model(&mut rng, 3);
    let cancel = Cancel::new();
    cancel.cancel();
    let layers = AtomicUsize::new(0);
    let on_layer = |_: LayerDone| {
        layers.fetch_add(1, Ordering::SeqCst);
    };
    let r = Request { strategy: Strategy::Apb, hosts: 2, ..full };
    let e = generate_controlled(&model, &r, &|_| true, Transfer::Handoff, Hooks { cancel: Some(&cancel), on_layer: Some(&on_layer) }).unwrap_err();
    assert_eq!(e.code, "CANCELLED");
    assert_eq!(layers.load(Ordering::SeqCst), 0);
}

#[test]
fn a_cancel_while_generating_stops_before_the_next_token() {
    let mut rng = Rng::fresh();
    let (model, full) = deep_model(&mut rng, 4);
    let r = Request { strategy: Strategy::Apb, hosts: 3, max_new_tokens: 40, stop_tokens: vec![], ..full };
    let cancel = Cancel::new();
    let tokens = AtomicUsize::new(0);
    let on_token = |_| {
        if tokens.fetch_add(1, Ordering::SeqCst) + 1 == 2 {
            cancel.cancel();
        }
        true
    };
    let e = generate_controlled(&model, &r, &on_token, Transfer::Handoff, Hooks { cancel: Some(&cancel), on_layer: None }).unwrap_err();
    assert_eq!(e.code, "CANCELLED");
    assert_eq!(tokens.load(Ordering::SeqCst), 2);
}

#[test]
fn every_host_reports_every_layer_of_prefill_once_and_in_order() {
    let mut rng = Rng::fresh();
    let layers = rng.range(2, 5);
    let (model, full) = deep_model(&mut rng, layers);
    for (strategy, hosts) in [(Strategy::Full, 1), (Strategy::Apb, rng.range(2, 5)), (Strategy::Star, rng.range(2, 4)), (Strategy::RingZigzag, rng.range(2, 4))] {
        let seen = Mutex::new(Vec::<LayerDone>::new());
        let on_layer = |d: LayerDone| seen.lock().unwrap().push(d);
        let r = Request { strategy, hosts, ..full.clone() };
        let out = generate_controlled(&model, &r, &|_| true, Transfer::Handoff, Hooks { cancel: None, on_layer: Some(&on_layer) }).unwrap();
        let seen = seen.into_inner().unwrap();
        assert_eq!(seen.len(), hosts * layers, "{strategy:?}");
        for h in 0..hosts {
            let mine: Vec<usize> = seen.iter().filter(|d| d.host == h).map(|d| d.layer).collect();
            assert_eq!(mine, (1..=layers).collect::<Vec<_>>(), "{strategy:?} host {h}");
        }
        assert!(seen.iter().all(|d| d.hosts == hosts && d.layers == layers), "{strategy:?}: {seen:?}");
        assert_eq!(out.hosts.len(), hosts);
    }
}

#[test]
fn the_first_token_comes_after_prefill_and_before_the_end() {
    let mut rng = Rng::fresh();
    let (model, full) = deep_model(&mut rng, 2);
    for r in [Request { strategy: Strategy::Apb, hosts: 3, ..full.clone() }, Request { max_new_tokens: 0, ..full.clone() }] {
        let out = generate(&model, &r, &|_| true).unwrap();
        assert!(out.first_token_wall_ms >= out.prefill_wall_ms, "{} < {}", out.first_token_wall_ms, out.prefill_wall_ms);
        assert!(out.first_token_wall_ms <= out.total_wall_ms, "{} > {}", out.first_token_wall_ms, out.total_wall_ms);
        // The slowest host's own prefill is part of the first token's wall time.
        let slowest = out.hosts.iter().map(|h| h.prefill_ms()).fold(0.0, f64::max);
        assert!(out.first_token_wall_ms >= slowest);
    }
}

#[test]
fn non_finite_logits_are_refused_not_sampled() {
    let mut rng = Rng::fresh();
    let c = tiny_config(Architecture::Llama);
    let mut tensors = random_tensors(&c, &mut rng);
    // One output row poisoned: that token's logit is NaN (or Inf) whatever the input.
    let row = rng.range(0, c.vocab - 1);
    let poison = if rng.uniform() < 0.5 { f32::NAN } else { f32::INFINITY };
    tensors.0.get_mut("lm_head.weight").unwrap()[row * c.hidden..(row + 1) * c.hidden].fill(poison);
    let model = cpu_model(&c, &tensors);
    let mut r = full_request(rng.tokens(50, c.vocab), rng.tokens(3, c.vocab));
    r.max_new_tokens = 4;
    let tokens = AtomicUsize::new(0);
    let e = generate(&model, &r, &|_| tokens.fetch_add(1, Ordering::SeqCst) < usize::MAX).unwrap_err();
    assert_eq!((e.code, e.path.as_str()), ("NUMERIC", "logits"), "{e:?}");
    assert!(e.message.contains(&format!("token id {row}")), "{}", e.message);
    assert_eq!(tokens.load(Ordering::SeqCst), 0, "no token is chosen from NaN logits");
}

#[test]
fn loading_stops_at_the_next_tensor_once_cancelled() {
    let mut rng = Rng::fresh();
    let mut c = tiny_config(Architecture::Llama);
    c.layers = 6;
    let tensors = random_tensors(&c, &mut rng);
    let cancel = Cancel::new();
    let stop_at = rng.range(2, 5);
    let mut inner = Tensors(tensors.0.clone());
    let mut reported = Vec::new();
    let mut progress = |done: usize, total: usize| {
        reported.push((done, total));
        if done == stop_at {
            cancel.cancel();
        }
    };
    let mut source = Cancellable { source: &mut inner, cancel: &cancel };
    let e = Model::load(Cpu, c.clone(), &mut source, &mut progress).err().expect("a cancelled load fails");
    assert_eq!(e.code, "CANCELLED");
    assert_eq!(reported.last().map(|r| r.0), Some(stop_at), "no step is reported after the cancel");
    let fresh = Cancel::new();
    let mut inner = Tensors(tensors.0);
    assert!(Model::load(Cpu, c, &mut Cancellable { source: &mut inner, cancel: &fresh }, &mut |_, _| {}).is_ok());
}

#[test]
fn a_hidden_state_that_overflows_is_refused_not_answered_with_token_0() {
    let mut rng = Rng::fresh();
    let c = tiny_config(Architecture::Llama);
    let mut tensors = random_tensors(&c, &mut rng);
    // Finite weights, but so large that the residual stream's squares overflow float32: the
    // final RMSNorm then gives zeros, every logit is 0, and argmax would answer token 0.
    let scale = 10f32.powf(20.0 + 10.0 * rng.uniform() as f32);
    for (name, values) in tensors.0.iter_mut() {
        if !name.ends_with("norm.weight") {
            values.iter_mut().for_each(|v| *v *= scale);
        }
    }
    let model = cpu_model(&c, &tensors);
    let mut r = full_request(rng.tokens(60, c.vocab), rng.tokens(3, c.vocab));
    r.max_new_tokens = 3;
    let e = generate(&model, &r, &|_| true).unwrap_err();
    assert_eq!((e.code, e.path.as_str()), ("NUMERIC", "logits"), "{e:?}");
}
