//! Test helpers: the shared seeded PRNG, random Llama-family models, and an independent float64
//! reference forward written as plainly as possible.
#![allow(dead_code)]

use std::collections::HashMap;

use apb_engine::config::{Architecture, Llama3Scaling, ModelConfig};
use apb_engine::cpu::backend::Cpu;
use apb_engine::weights::TensorSource;
use apb_engine::sample::Sampling;
use apb_engine::comm::Comm;
use apb_engine::tcp::{listen, TcpComm};
use apb_engine::{generate_host, EngineError, HostOutput, Model, Output, Request};
use apb_plan::input::{Scorer, Strategy};
pub use apb_test_support::Rng;

pub fn tiny_config(architecture: Architecture) -> ModelConfig {
    ModelConfig {
        architecture,
        vocab: 97,
        hidden: 32,
        layers: 2,
        heads: 4,
        kv_heads: 2,
        head_dim: 8,
        intermediate: 64,
        rms_norm_eps: 1e-5,
        rope_theta: 10_000.0,
        rope_scaling: None,
        tied_embeddings: false,
        attention_bias: architecture == Architecture::Qwen2,
        max_positions: 4096,
    }
}

pub fn llama31_scaling() -> Option<Llama3Scaling> {
    Some(Llama3Scaling { factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_positions: 64.0 })
}

/// Named tensors in memory, as a checkpoint would hold them ([out][in]).
pub struct Tensors(pub HashMap<String, Vec<f32>>);

impl TensorSource for Tensors {
    fn tensor(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>, EngineError> {
        let t = self.0.get(name).ok_or_else(|| EngineError::new("TENSOR_MISSING", name, format!("missing {name}")))?;
        assert_eq!(t.len(), shape.iter().product::<usize>(), "{name}");
        Ok(t.clone())
    }
    fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }
}

pub fn random_tensors(c: &ModelConfig, rng: &mut Rng) -> Tensors {
    let mut t = HashMap::new();
    let (d, qw, kvw, f, v) = (c.hidden, c.heads * c.head_dim, c.kv_heads * c.head_dim, c.intermediate, c.vocab);
    let w = 1.0 / (d as f64).sqrt();
    t.insert("model.embed_tokens.weight".to_string(), rng.vec(v * d, 1.0));
    if !c.tied_embeddings {
        t.insert("lm_head.weight".to_string(), rng.vec(v * d, w));
    }
    let norm = |rng: &mut Rng, n: usize| (0..n).map(|_| (1.0 + 0.1 * rng.normal()) as f32).collect::<Vec<f32>>();
    for i in 0..c.layers {
        let p = format!("model.layers.{i}");
        t.insert(format!("{p}.input_layernorm.weight"), norm(rng, d));
        t.insert(format!("{p}.post_attention_layernorm.weight"), norm(rng, d));
        t.insert(format!("{p}.self_attn.q_proj.weight"), rng.vec(qw * d, w));
        t.insert(format!("{p}.self_attn.k_proj.weight"), rng.vec(kvw * d, w));
        t.insert(format!("{p}.self_attn.v_proj.weight"), rng.vec(kvw * d, w));
        t.insert(format!("{p}.self_attn.o_proj.weight"), rng.vec(d * qw, 1.0 / (qw as f64).sqrt()));
        if c.attention_bias {
            t.insert(format!("{p}.self_attn.q_proj.bias"), rng.vec(qw, 0.1));
            t.insert(format!("{p}.self_attn.k_proj.bias"), rng.vec(kvw, 0.1));
            t.insert(format!("{p}.self_attn.v_proj.bias"), rng.vec(kvw, 0.1));
        }
        t.insert(format!("{p}.mlp.gate_proj.weight"), rng.vec(f * d, w));
        t.insert(format!("{p}.mlp.up_proj.weight"), rng.vec(f * d, w));
        t.insert(format!("{p}.mlp.down_proj.weight"), rng.vec(d * f, 1.0 / (f as f64).sqrt()));
    }
    t.insert("model.norm.weight".to_string(), norm(rng, d));
    Tensors(t)
}

pub fn cpu_model(c: &ModelConfig, tensors: &Tensors) -> Model<Cpu> {
    let mut source = Tensors(tensors.0.clone());
    Model::load(Cpu, c.clone(), &mut source, &mut |_, _| {}).expect("model loads")
}

// ---- The float64 reference forward: plain loops, an explicit causal mask, no tricks. ----

fn matvec(w: &[f32], out: usize, inp: usize, x: &[f64]) -> Vec<f64> {
    (0..out).map(|o| (0..inp).map(|i| w[o * inp + i] as f64 * x[i]).sum()).collect()
}

fn rms(x: &[f64], w: &[f32], eps: f64) -> Vec<f64> {
    let ms = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
    x.iter().zip(w).map(|(v, g)| v / (ms + eps).sqrt() * *g as f64).collect()
}

pub fn reference_inv_freq(c: &ModelConfig) -> Vec<f64> {
    let d = c.head_dim as f64;
    (0..c.head_dim / 2)
        .map(|i| {
            let f = c.rope_theta.powf(-(2.0 * i as f64) / d);
            match c.rope_scaling {
                None => f,
                Some(s) => {
                    let wavelen = 2.0 * std::f64::consts::PI / f;
                    let (lo, hi) = (s.original_max_positions / s.low_freq_factor, s.original_max_positions / s.high_freq_factor);
                    if wavelen < hi {
                        f
                    } else if wavelen > lo {
                        f / s.factor
                    } else {
                        let smooth = (s.original_max_positions / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
                        (1.0 - smooth) * f / s.factor + smooth * f
                    }
                }
            }
        })
        .collect()
}

pub fn reference_rope(x: &mut [f64], heads: usize, d: usize, pos: f64, inv_freq: &[f64]) {
    for h in 0..heads {
        let v = &mut x[h * d..(h + 1) * d];
        let orig = v.to_vec();
        for i in 0..d {
            let (j, sign) = if i < d / 2 { (i + d / 2, -1.0) } else { (i - d / 2, 1.0) };
            let angle = pos * inv_freq[i % (d / 2)];
            v[i] = orig[i] * angle.cos() + sign * orig[j] * angle.sin();
        }
    }
}

/// Logits of the last token of `tokens` under full causal attention, in float64.
pub fn reference_logits(c: &ModelConfig, t: &Tensors, tokens: &[u32]) -> Vec<f64> {
    let g = |name: &str| t.0.get(name).unwrap_or_else(|| panic!("{name}"));
    let (d, hd, nq, nkv) = (c.hidden, c.head_dim, c.heads, c.kv_heads);
    let inv_freq = reference_inv_freq(c);
    let eps = c.rms_norm_eps as f64;
    let embed = g("model.embed_tokens.weight");
    let mut x: Vec<Vec<f64>> = tokens.iter().map(|&id| embed[id as usize * d..(id as usize + 1) * d].iter().map(|v| *v as f64).collect()).collect();
    for l in 0..c.layers {
        let p = format!("model.layers.{l}");
        let (mut qs, mut ks, mut vs) = (Vec::new(), Vec::new(), Vec::new());
        for (pos, row) in x.iter().enumerate() {
            let h = rms(row, g(&format!("{p}.input_layernorm.weight")), eps);
            let mut q = matvec(g(&format!("{p}.self_attn.q_proj.weight")), nq * hd, d, &h);
            let mut k = matvec(g(&format!("{p}.self_attn.k_proj.weight")), nkv * hd, d, &h);
            let mut v = matvec(g(&format!("{p}.self_attn.v_proj.weight")), nkv * hd, d, &h);
            if c.attention_bias {
                for (name, vec) in [("q", &mut q), ("k", &mut k), ("v", &mut v)] {
                    for (a, b) in vec.iter_mut().zip(g(&format!("{p}.self_attn.{name}_proj.bias"))) {
                        *a += *b as f64;
                    }
                }
            }
            reference_rope(&mut q, nq, hd, pos as f64, &inv_freq);
            reference_rope(&mut k, nkv, hd, pos as f64, &inv_freq);
            qs.push(q);
            ks.push(k);
            vs.push(v);
        }
        for i in 0..x.len() {
            let mut attn = vec![0.0f64; nq * hd];
            for h in 0..nq {
                let kvh = h / (nq / nkv);
                let scores: Vec<f64> = (0..=i)
                    .map(|j| (0..hd).map(|e| qs[i][h * hd + e] * ks[j][kvh * hd + e]).sum::<f64>() / (hd as f64).sqrt())
                    .collect();
                let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = scores.iter().map(|s| (s - m).exp()).sum();
                for (j, s) in scores.iter().enumerate() {
                    for e in 0..hd {
                        attn[h * hd + e] += (s - m).exp() / z * vs[j][kvh * hd + e];
                    }
                }
            }
            let o = matvec(g(&format!("{p}.self_attn.o_proj.weight")), d, nq * hd, &attn);
            for (a, b) in x[i].iter_mut().zip(o) {
                *a += b;
            }
            let h = rms(&x[i], g(&format!("{p}.post_attention_layernorm.weight")), eps);
            let gate = matvec(g(&format!("{p}.mlp.gate_proj.weight")), c.intermediate, d, &h);
            let up = matvec(g(&format!("{p}.mlp.up_proj.weight")), c.intermediate, d, &h);
            let act: Vec<f64> = gate.iter().zip(&up).map(|(a, b)| a / (1.0 + (-a).exp()) * b).collect();
            let down = matvec(g(&format!("{p}.mlp.down_proj.weight")), d, c.intermediate, &act);
            for (a, b) in x[i].iter_mut().zip(down) {
                *a += b;
            }
        }
    }
    let last = rms(x.last().expect("tokens"), g("model.norm.weight"), eps);
    let head = if c.tied_embeddings { embed } else { g("lm_head.weight") };
    matvec(head, c.vocab, d, &last)
}

pub fn rel_error(a: &[f32], b: &[f64]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| (*x as f64 - y).powi(2)).sum();
    let den: f64 = b.iter().map(|y| y * y).sum();
    (num / den).sqrt()
}

pub fn rel_error32(a: &[f32], b: &[f32]) -> f64 {
    rel_error(a, &b.iter().map(|v| *v as f64).collect::<Vec<_>>())
}

/// A full-attention request on one host that only prefills and runs the query.
pub fn full_request(context: Vec<u32>, query: Vec<u32>) -> Request {
    Request {
        context,
        prefix_tokens: 1,
        query,
        strategy: Strategy::Full,
        hosts: 1,
        anchor_tokens: None,
        passing_tokens: None,
        balanced: None,
        scorer: Scorer::Query,
        max_new_tokens: 0,
        stop_tokens: vec![],
        sampling: Sampling::default(),
    }
}


/// H CPU hosts joined over TCP on loopback, as `group` (each in its own thread until joined).
pub fn tcp_group(size: usize, group: &str) -> Vec<TcpComm> {
    let listeners: Vec<_> = (0..size).map(|_| listen("127.0.0.1:0").unwrap()).collect();
    let addresses: Vec<String> = listeners.iter().map(|(_, a)| a.to_string()).collect();
    std::thread::scope(|s| {
        let joining: Vec<_> = listeners
            .iter()
            .enumerate()
            .map(|(rank, (l, _))| {
                let addresses = addresses.clone();
                s.spawn(move || TcpComm::connect(l, group, rank, &addresses, 5000).unwrap())
            })
            .collect();
        joining.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Two runs give the same first-token logits (to 1e-5) and the same tokens.
pub fn assert_same(a: &Output, b: &Output, what: &str) {
    let err = rel_error32(&a.first_logits, &b.first_logits);
    assert!(err < 1e-5, "{what}: first-token logits differ by {err}");
    assert_eq!(a.tokens, b.tokens, "{what}: generated tokens differ");
}

/// Each host of a group of real hosts (one `Comm` each) runs `r` on its own thread, as a host
/// that is its own process would; every host's result, in rank order.
pub fn run_hosts<C: Comm>(model: &Model<Cpu>, r: &Request, comms: &mut [C]) -> Vec<apb_engine::Result<HostOutput>> {
    std::thread::scope(|s| {
        let hosts: Vec<_> = comms.iter_mut().map(|c| s.spawn(move || generate_host(model, r, c, &|_| true))).collect();
        hosts.into_iter().map(|h| h.join().unwrap()).collect()
    })
}
