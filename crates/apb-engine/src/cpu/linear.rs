//! y = x W^T + b with W stored transposed (W^T: [in][out]) so the inner loop runs along
//! contiguous output columns and vectorises; f32 accumulation.

use super::par;

/// Rows of x handled together: each loaded W^T row is reused this many times.
const ROW_TILE: usize = 4;
/// Output columns per tile: the accumulators (ROW_TILE x COL_TILE floats) stay in L1.
const COL_TILE: usize = 512;

/// `x`: [rows][inp], `wt`: [inp][outp], `bias`: [outp], `out`: [rows][outp].
pub fn linear(x: &[f32], inp: usize, wt: &[f32], outp: usize, bias: Option<&[f32]>, out: &mut [f32]) {
    let rows = x.len() / inp;
    debug_assert_eq!(wt.len(), inp * outp);
    debug_assert_eq!(out.len(), rows * outp);
    if rows >= ROW_TILE * par::threads() {
        par::for_row_chunks(out, outp, ROW_TILE, |first, chunk| {
            let n = chunk.len() / outp;
            tile_rows(&x[first * inp..(first + n) * inp], inp, wt, outp, 0, outp, bias, chunk);
        });
    } else {
        // Few rows (decode): split the output columns instead.
        let cols_per = outp.div_ceil(par::threads());
        let parts = par::map(outp.div_ceil(cols_per), |p| {
            let (c0, c1) = (p * cols_per, ((p + 1) * cols_per).min(outp));
            let mut part = vec![0.0f32; rows * (c1 - c0)];
            tile_rows(x, inp, wt, outp, c0, c1, bias, &mut part);
            (c0, c1, part)
        });
        for (c0, c1, part) in parts {
            let w = c1 - c0;
            for r in 0..rows {
                out[r * outp + c0..r * outp + c1].copy_from_slice(&part[r * w..(r + 1) * w]);
            }
        }
    }
}

/// Computes columns [c0, c1) of every row of `x` into `out` ([rows][c1 - c0]), with AVX2
/// and FMA where the CPU has them (checked at run time, so one build runs everywhere).
#[allow(clippy::too_many_arguments)]
fn tile_rows(x: &[f32], inp: usize, wt: &[f32], outp: usize, c0: usize, c1: usize, bias: Option<&[f32]>, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::simd::has_avx2_fma() {
        // SAFETY: the CPU supports AVX2 and FMA (checked just above).
        unsafe { tile_rows_avx2(x, inp, wt, outp, c0, c1, bias, out) };
        return;
    }
    tile_rows_body::<false>(x, inp, wt, outp, c0, c1, bias, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_rows_avx2(x: &[f32], inp: usize, wt: &[f32], outp: usize, c0: usize, c1: usize, bias: Option<&[f32]>, out: &mut [f32]) {
    tile_rows_body::<true>(x, inp, wt, outp, c0, c1, bias, out);
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn tile_rows_body<const FMA: bool>(x: &[f32], inp: usize, wt: &[f32], outp: usize, c0: usize, c1: usize, bias: Option<&[f32]>, out: &mut [f32]) {
    let rows = x.len() / inp;
    let width = c1 - c0;
    let mut acc = vec![0.0f32; ROW_TILE * COL_TILE];
    for r0 in (0..rows).step_by(ROW_TILE) {
        let nr = ROW_TILE.min(rows - r0);
        for t0 in (c0..c1).step_by(COL_TILE) {
            let nc = COL_TILE.min(c1 - t0);
            for a in acc.chunks_mut(COL_TILE).take(nr) {
                match bias {
                    Some(b) => a[..nc].copy_from_slice(&b[t0..t0 + nc]),
                    None => a[..nc].iter_mut().for_each(|v| *v = 0.0),
                }
            }
            for k in 0..inp {
                let w = &wt[k * outp + t0..k * outp + t0 + nc];
                for i in 0..nr {
                    let xv = x[(r0 + i) * inp + k];
                    let a = &mut acc[i * COL_TILE..i * COL_TILE + nc];
                    for (av, wv) in a.iter_mut().zip(w) {
                        *av = if FMA { xv.mul_add(*wv, *av) } else { *av + xv * wv };
                    }
                }
            }
            for i in 0..nr {
                let dst = (r0 + i) * width + (t0 - c0);
                out[dst..dst + nc].copy_from_slice(&acc[i * COL_TILE..i * COL_TILE + nc]);
            }
        }
    }
}

/// W [out][in] (as stored in checkpoints) to W^T [in][out].
pub fn transpose(w: &[f32], outp: usize, inp: usize) -> Vec<f32> {
    let mut t = vec![0.0f32; w.len()];
    for o in 0..outp {
        for i in 0..inp {
            t[i * outp + o] = w[o * inp + i];
        }
    }
    t
}
