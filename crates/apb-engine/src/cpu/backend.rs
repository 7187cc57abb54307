//! The CPU backend: buffers are plain vectors; each op checks its shapes and reports a
//! mismatch as an error rather than panicking.

use super::attention::{self, KeySegment};
use crate::heads::Heads;
use super::{elementwise, linear, select};
use crate::backend::{column_rows, concat_column_rows, Backend, Segment};
use crate::error::{EngineError, Result};

#[derive(Debug, Default, Clone, Copy)]
pub struct Cpu;

fn shape_error(op: &str, what: String) -> EngineError {
    EngineError::new(crate::error::code::INTERNAL, op, format!("{op}: {what}"))
}

fn check(op: &str, ok: bool, what: impl FnOnce() -> String) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(shape_error(op, what()))
    }
}

impl Backend for Cpu {
    type Buf = Vec<f32>;

    fn name(&self) -> &'static str {
        "cpu"
    }
    fn upload(&self, data: Vec<f32>) -> Result<Vec<f32>> {
        Ok(data)
    }
    fn download(&self, buf: &Vec<f32>) -> Result<Vec<f32>> {
        Ok(buf.clone())
    }
    fn len(&self, buf: &Vec<f32>) -> usize {
        buf.len()
    }
    fn linear_weight(&self, w: Vec<f32>, outp: usize, inp: usize) -> Result<Vec<f32>> {
        check("linear_weight", w.len() == outp * inp, || format!("{} values for [{outp}][{inp}]", w.len()))?;
        Ok(linear::pack(&w, outp, inp))
    }

    fn embed(&self, table: &Vec<f32>, hidden: usize, ids: &[u32]) -> Result<Vec<f32>> {
        let vocab = table.len() / hidden.max(1);
        if let Some(bad) = ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(EngineError::invalid("tokens", format!("token id {bad} is outside the vocabulary of {vocab}")));
        }
        let mut out = vec![0.0; ids.len() * hidden];
        elementwise::embed(table, hidden, ids, &mut out);
        Ok(out)
    }
    fn rms_norm(&self, x: &Vec<f32>, w: &Vec<f32>, eps: f32) -> Result<Vec<f32>> {
        check("rms_norm", !w.is_empty() && x.len().is_multiple_of(w.len()), || format!("{} values, width {}", x.len(), w.len()))?;
        let mut out = vec![0.0; x.len()];
        elementwise::rms_norm(x, w, eps, &mut out);
        Ok(out)
    }
    fn linear(&self, x: &Vec<f32>, inp: usize, w: &Vec<f32>, outp: usize, bias: Option<&Vec<f32>>) -> Result<Vec<f32>> {
        check("linear", inp > 0 && x.len().is_multiple_of(inp) && w.len() == inp * outp, || {
            format!("x has {} values for width {inp}; W has {} for [{outp}][{inp}]", x.len(), w.len())
        })?;
        check("linear", bias.is_none_or(|b| b.len() == outp), || format!("bias must have {outp} values"))?;
        let mut out = vec![0.0; x.len() / inp * outp];
        linear::linear(x, inp, w, outp, bias.map(|b| b.as_slice()), &mut out);
        Ok(out)
    }
    fn rope(&self, x: &mut Vec<f32>, heads: usize, head_dim: usize, positions: &[u32], inv_freq: &[f64]) -> Result<()> {
        check("rope", x.len() == positions.len() * heads * head_dim && inv_freq.len() * 2 == head_dim, || {
            format!("{} values for {} positions x {heads} heads x {head_dim}", x.len(), positions.len())
        })?;
        elementwise::rope(x, heads, head_dim, positions, inv_freq);
        Ok(())
    }
    fn silu_mul(&self, gate_up: &Vec<f32>, width: usize) -> Result<Vec<f32>> {
        check("silu_mul", width > 0 && gate_up.len().is_multiple_of(2 * width), || format!("{} values are not rows of 2 x {width}", gate_up.len()))?;
        let mut out = vec![0.0; gate_up.len() / 2];
        for (row, o) in gate_up.chunks_exact(2 * width).zip(out.chunks_exact_mut(width)) {
            let (gate, up) = row.split_at(width);
            elementwise::silu_mul(gate, up, o);
        }
        Ok(out)
    }
    fn silu(&self, x: &mut Vec<f32>) -> Result<()> {
        elementwise::silu(x);
        Ok(())
    }
    fn add(&self, x: &mut Vec<f32>, y: &Vec<f32>) -> Result<()> {
        check("add", x.len() == y.len(), || format!("{} vs {} values", x.len(), y.len()))?;
        elementwise::add_in_place(x, y);
        Ok(())
    }
    fn attention(&self, q: &Vec<f32>, heads: Heads, segments: &[Segment<'_, Vec<f32>>]) -> Result<(Vec<f32>, Vec<f32>)> {
        let qw = heads.q_heads * heads.head_dim;
        let kvw = heads.kv_heads * heads.head_dim;
        check("attention", qw > 0 && q.len().is_multiple_of(qw) && heads.q_heads.is_multiple_of(heads.kv_heads.max(1)), || {
            format!("{} query values for {} heads x {}", q.len(), heads.q_heads, heads.head_dim)
        })?;
        for s in segments {
            let tokens = s.k.len() / kvw;
            check("attention", s.k.len() == s.v.len() && s.k.len() % kvw == 0 && s.start + s.count <= tokens, || {
                format!("segment [{}, +{}) outside a K/V buffer of {tokens} tokens", s.start, s.count)
            })?;
        }
        let rows = q.len() / qw;
        let segs: Vec<KeySegment> =
            segments.iter().map(|s| KeySegment { k: s.k, v: s.v, start: s.start, count: s.count, causal: s.causal }).collect();
        let mut out = vec![0.0; q.len()];
        let mut lse = vec![0.0; rows * heads.q_heads];
        attention::attention(q, heads, &segs, &mut out, &mut lse);
        Ok((out, lse))
    }
    fn merge(&self, o: &mut Vec<f32>, lse: &mut Vec<f32>, o2: &Vec<f32>, lse2: &Vec<f32>, head_dim: usize) -> Result<()> {
        check("merge", o.len() == o2.len() && lse.len() == lse2.len() && o.len() == lse.len() * head_dim, || {
            format!("O {} / {}, LSE {} / {}", o.len(), o2.len(), lse.len(), lse2.len())
        })?;
        attention::merge(o, lse, o2, lse2, head_dim);
        Ok(())
    }
    fn rows(&self, x: &Vec<f32>, width: usize, start: usize, count: usize) -> Result<Vec<f32>> {
        check("rows", (start + count) * width <= x.len(), || format!("rows [{start}, +{count}) of {}", x.len() / width.max(1)))?;
        Ok(x[start * width..(start + count) * width].to_vec())
    }
    fn concat_rows(&self, parts: &[&Vec<f32>]) -> Result<Vec<f32>> {
        Ok(parts.iter().flat_map(|p| p.iter().copied()).collect())
    }
    fn write_rows(&self, dst: &mut Vec<f32>, width: usize, row_start: usize, src: &Vec<f32>) -> Result<()> {
        let at = row_start * width;
        check("write_rows", at + src.len() <= dst.len(), || format!("rows {row_start}.. of {} values into {}", src.len(), dst.len()))?;
        dst[at..at + src.len()].copy_from_slice(src);
        Ok(())
    }
    fn columns(&self, x: &Vec<f32>, width: usize, start: usize, count: usize) -> Result<Vec<f32>> {
        column_rows(x.len(), width, start, count).map_err(|what| shape_error("columns", what))?;
        Ok(x.chunks_exact(width).flat_map(|row| &row[start..start + count]).copied().collect())
    }
    fn concat_columns(&self, parts: &[(&Vec<f32>, usize)]) -> Result<Vec<f32>> {
        let shapes: Vec<(usize, usize)> = parts.iter().map(|(p, w)| (p.len(), *w)).collect();
        let rows = concat_column_rows(&shapes).map_err(|what| shape_error("concat_columns", what))?;
        let mut out = Vec::with_capacity(shapes.iter().map(|s| s.0).sum());
        for r in 0..rows {
            for (p, w) in parts {
                out.extend_from_slice(&p[r * w..(r + 1) * w]);
            }
        }
        Ok(out)
    }
    fn query_scores(&self, q_rows: &Vec<f32>, k: &Vec<f32>, heads: Heads) -> Result<Vec<f32>> {
        Ok(select::query_scores(q_rows, k, heads))
    }
    fn gather_per_head(&self, kv: &Vec<f32>, picked: &[Vec<u32>], head_dim: usize) -> Result<Vec<f32>> {
        let tokens = kv.len() / (picked.len() * head_dim).max(1);
        check("gather_per_head", picked.iter().flatten().all(|&t| (t as usize) < tokens), || format!("index beyond {tokens} tokens"))?;
        Ok(select::gather_per_head(kv, picked, head_dim))
    }
}
