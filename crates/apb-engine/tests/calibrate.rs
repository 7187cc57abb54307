//! The calibration on the CPU backend: finite positive rates, and FLOPs counted exactly as the
//! planner (apb-plan's cost functions) counts them, so a measured rate means what it divides by.

use apb_engine::calibrate::{self, causal_attention_flops, layer_gemm_flops, LayerShape, Repeats, Settings, Step};
use apb_engine::cpu::backend::Cpu;
use apb_plan::cost::{attention_pairs, ffn_flops_per_row, projection_flops_per_row};
use apb_plan::layout::Mask;

const SHAPE: LayerShape = LayerShape { hidden: 64, heads: 4, kv_heads: 2, head_dim: 16, intermediate: 96 };

fn small() -> Settings {
    Settings { tokens: 8, attention_tokens: 32, copy_bytes: 1 << 20, repeats: Repeats { warmup: 1, warmup_ms: 0.0, runs: 3, sample_ms: 0.0 } }
}

/// A planner input with this shape (the other fields are the planner's defaults).
fn plan_input(s: &LayerShape) -> apb_plan::PlanInput {
    let json = format!(
        r#"{{"contextTokens": 1024, "model": {{"layers": 1, "hidden": {}, "heads": {}, "kvHeads": {}, "headDim": {}, "intermediate": {}, "vocab": 100, "bytesPerWeight": 2}},
            "hardware": {{"matmulTflops": 1, "attentionTflops": 1, "hbmGBs": 1, "linkGBs": 1, "linkLatencyUs": 1, "memoryGiB": 1}}}}"#,
        s.hidden, s.heads, s.kv_heads, s.head_dim, s.intermediate
    );
    apb_plan::input::parse_plan_input(&apb_plan::json::parse(&json).unwrap()).unwrap()
}

#[test]
fn the_cpu_backend_gives_finite_positive_rates() {
    let mut steps = Vec::new();
    let c = calibrate::calibrate(&Cpu, &SHAPE, &small(), &mut |s: Step| steps.push(s.name())).unwrap();
    for (what, rate) in [("matmul", c.matmul_tflops()), ("attention", c.attention_tflops()), ("copy", c.copy_gbs())] {
        assert!(rate.is_finite() && rate > 0.0, "{what} rate {rate}");
    }
    assert!(c.gemms.iter().all(|g| g.ms.is_finite() && g.ms > 0.0));
    assert_eq!(c.free_memory_bytes, None, "the CPU backend does not plan memory");
    assert_eq!(steps, ["memory", "q", "kv", "o", "gate_up", "down", "attention", "copy"]);
}

#[test]
fn gemm_flops_are_the_planners_projection_and_ffn_flops() {
    let llama_8b = LayerShape { hidden: 4096, heads: 32, kv_heads: 8, head_dim: 128, intermediate: 14336 };
    for shape in [SHAPE, llama_8b] {
        let input = plan_input(&shape);
        for tokens in [1, 8, 8192] {
            let planner = tokens as f64 * (projection_flops_per_row(&input) + ffn_flops_per_row(&input));
            assert_eq!(layer_gemm_flops(&shape, tokens), planner, "{shape:?} at {tokens} tokens");
        }
    }
}

#[test]
fn attention_flops_are_the_planners_causal_count() {
    for tokens in [1u64, 32, 16384] {
        let planner = 4.0 * SHAPE.heads as f64 * SHAPE.head_dim as f64 * attention_pairs(tokens, tokens, Mask::Causal);
        assert_eq!(causal_attention_flops(SHAPE.heads(), tokens as usize), planner);
    }
}

#[test]
fn a_calibration_counts_the_work_it_ran() {
    let s = small();
    let c = calibrate::calibrate(&Cpu, &SHAPE, &s, &mut |_| {}).unwrap();
    assert_eq!(c.gemm_flops(), layer_gemm_flops(&SHAPE, s.tokens));
    assert_eq!(c.attention_flops, causal_attention_flops(SHAPE.heads(), s.attention_tokens));
    assert_eq!(c.copy_bytes_moved, 2.0 * s.copy_bytes as f64);
}

#[test]
fn bad_sizes_are_refused_naming_the_field() {
    let refused = |shape: LayerShape, s: Settings| calibrate::calibrate(&Cpu, &shape, &s, &mut |_| {}).unwrap_err();
    let e = refused(LayerShape { kv_heads: 3, ..SHAPE }, small());
    assert_eq!((e.code, e.path.as_str()), ("INVALID_INPUT", "kvHeads"));
    let e = refused(LayerShape { head_dim: 0, ..SHAPE }, small());
    assert_eq!(e.path, "headDim");
    let e = refused(SHAPE, Settings { tokens: 1 << 30, ..small() });
    assert_eq!(e.path, "tokens");
    let e = refused(SHAPE, Settings { attention_tokens: 0, ..small() });
    assert_eq!(e.path, "attentionTokens");
    let e = refused(SHAPE, Settings { repeats: Repeats { sample_ms: f64::NAN, ..small().repeats }, ..small() });
    assert_eq!(e.path, "sampleMs");
}
