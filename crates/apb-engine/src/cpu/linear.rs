//! y = x W^T + b, f32 with f32 accumulation, as a register-blocked GEMM (the GotoBLAS /
//! BLIS arrangement).
//!
//! W is packed once, at load time ([`pack`]), into column panels of `NR` = 16 outputs:
//! panel p holds columns [16p, 16p + 16) as [in][16], contiguous, and the last panel holds
//! the `outp % 16` leftover columns as [in][outp % 16]; the same number of values as W, so
//! any K-slice of a panel is one contiguous run. A micro-kernel keeps an `MR` (<= 6) x 16
//! block of outputs in 12 AVX registers while it streams a K-slice of one panel (which
//! stays in L1 across the row blocks that reuse it) against a block of x rows packed as
//! [k][row] (which stays in L2). K is cut into slices of at most `KC` and rows into blocks
//! of `MC`; AVX2 and FMA are checked at run time, with a portable kernel otherwise.
//!
//! Threads split the rows when there are many (prefill) and the column panels when there
//! are few (decode), through [`par`].

use super::par;

/// Rows of a micro-tile (6 x 2 accumulators, 2 panel loads and 1 broadcast: 15 registers).
const MR: usize = 6;
/// Columns of a micro-tile and the width of a packed panel.
const NR: usize = 16;
/// Most of K one pass covers: a panel's slice (KC x 16 floats, 16 KiB) stays in L1.
const KC: usize = 256;
/// Rows packed per pass: the packed block (MC x KC floats, 96 KiB) stays in L2.
const MC: usize = 96;
/// Below this many multiply-adds (about 0.2 ms on one core) a call runs on the calling
/// thread: par spawns its threads per call (some 40 us each here), and a few-row call is
/// bound by memory bandwidth, which a second core barely raises.
const SERIAL_WORK: usize = 1 << 23;

/// `x`: [rows][inp], `w`: W packed by [`pack`], `bias`: [outp], `out`: [rows][outp].
pub fn linear(x: &[f32], inp: usize, w: &[f32], outp: usize, bias: Option<&[f32]>, out: &mut [f32]) {
    linear_with(true, x, inp, w, outp, bias, out);
}

/// [`linear`], with the SIMD kernel allowed or not (the tests run the portable one too).
fn linear_with(simd: bool, x: &[f32], inp: usize, w: &[f32], outp: usize, bias: Option<&[f32]>, out: &mut [f32]) {
    let rows = x.len().checked_div(inp).unwrap_or(out.len().checked_div(outp).unwrap_or(0));
    assert_eq!(w.len(), inp * outp, "linear: packed W has {} values for [{outp}][{inp}]", w.len());
    assert_eq!(out.len(), rows * outp, "linear: output has {} values for [{rows}][{outp}]", out.len());
    assert!(bias.is_none_or(|b| b.len() == outp), "linear: bias must have {outp} values");
    if rows == 0 || outp == 0 {
        return;
    }
    if inp == 0 {
        for row in out.chunks_mut(outp) {
            match bias {
                Some(b) => row.copy_from_slice(b),
                None => row.fill(0.0),
            }
        }
        return;
    }
    let panels = outp.div_ceil(NR);
    let threads = if rows * inp * outp < SERIAL_WORK { 1 } else { par::threads() };
    if threads == 1 {
        gemm(simd, x, inp, w, outp, 0..panels, bias, out, outp);
        return;
    }
    if rows >= 2 * MR * threads {
        // Many rows (prefill): each thread takes whole rows and every panel.
        par::for_row_chunks(out, outp, 2 * MR, |first, chunk| {
            let n = chunk.len() / outp;
            gemm(simd, &x[first * inp..(first + n) * inp], inp, w, outp, 0..panels, bias, chunk, outp);
        });
        return;
    }
    // Few rows (decode): each thread takes every row and a run of panels.
    let per = panels.div_ceil(threads.min(panels));
    let done = par::map(panels.div_ceil(per), |t| {
        let ps = t * per..((t + 1) * per).min(panels);
        let (c0, c1) = (ps.start * NR, (ps.end * NR).min(outp));
        let mut part = vec![0.0f32; rows * (c1 - c0)];
        gemm(simd, x, inp, w, outp, ps, bias, &mut part, c1 - c0);
        (c0, c1, part)
    });
    for (c0, c1, part) in done {
        for (dst, src) in out.chunks_mut(outp).zip(part.chunks(c1 - c0)) {
            dst[c0..c1].copy_from_slice(src);
        }
    }
}

/// W [out][in] (as stored in checkpoints) to the panel layout [`linear`] reads.
pub fn pack(w: &[f32], outp: usize, inp: usize) -> Vec<f32> {
    assert_eq!(w.len(), outp * inp, "pack: {} values for [{outp}][{inp}]", w.len());
    let mut packed = Vec::with_capacity(w.len());
    if inp == 0 {
        return packed;
    }
    for c0 in (0..outp).step_by(NR) {
        let cols: Vec<&[f32]> = w[c0 * inp..].chunks(inp).take(NR.min(outp - c0)).collect();
        for k in 0..inp {
            packed.extend(cols.iter().map(|col| col[k]));
        }
    }
    packed
}

/// How a micro-tile's outputs start: from zero, from the bias, or from what `out` holds
/// (every K-slice after the first).
#[derive(Clone, Copy)]
enum Init<'a> {
    Zero,
    Bias(&'a [f32]),
    Add,
}

/// Computes the columns of panels `ps` for every row of `x` ([rows][inp]) into `out`
/// ([rows][ldc]; column c lands at c - 16 * ps.start), with the AVX2/FMA kernel when `simd`
/// is set and the CPU has both.
#[allow(clippy::too_many_arguments)]
fn gemm(simd: bool, x: &[f32], inp: usize, w: &[f32], outp: usize, ps: std::ops::Range<usize>, bias: Option<&[f32]>, out: &mut [f32], ldc: usize) {
    #[cfg(target_arch = "x86_64")]
    if simd && super::simd::has_avx2_fma() {
        // SAFETY: the CPU supports AVX2 and FMA (checked just above), which is all
        // gemm_avx2 requires.
        unsafe { gemm_avx2(x, inp, w, outp, ps, bias, out, ldc) };
        return;
    }
    let _ = simd;
    // SAFETY: SIMD = false asks nothing of the CPU.
    unsafe { gemm_body::<false>(x, inp, w, outp, ps, bias, out, ldc) };
}

/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_avx2(x: &[f32], inp: usize, w: &[f32], outp: usize, ps: std::ops::Range<usize>, bias: Option<&[f32]>, out: &mut [f32], ldc: usize) {
    // SAFETY: the caller guarantees AVX2 and FMA, the only requirement of SIMD = true.
    unsafe { gemm_body::<true>(x, inp, w, outp, ps, bias, out, ldc) };
}

/// The blocked loops around the micro-kernel (see the module comment).
///
/// # Safety
/// With `SIMD` set, the CPU must support AVX2 and FMA.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_body<const SIMD: bool>(
    x: &[f32],
    inp: usize,
    w: &[f32],
    outp: usize,
    ps: std::ops::Range<usize>,
    bias: Option<&[f32]>,
    out: &mut [f32],
    ldc: usize,
) {
    let rows = x.len() / inp;
    // One row block: the packed rows are small, so K need not be cut (no reloads of out).
    let kc_max = if rows <= MR { inp } else { KC.min(inp) };
    let k_slices = inp.div_ceil(kc_max);
    let kc_max = inp.div_ceil(k_slices);
    let mc_max = MC.min(rows);
    let mut a_pack = vec![0.0f32; mc_max * kc_max];
    // The last panel, when narrower than 16, padded with zeros to 16 (and its bias).
    let mut b_pad = vec![0.0f32; kc_max * NR];
    let mut bias_pad = [0.0f32; NR];
    let col0 = ps.start * NR;
    for r0 in (0..rows).step_by(MC) {
        let mc = MC.min(rows - r0);
        for s in 0..k_slices {
            let k0 = s * kc_max;
            let kc = kc_max.min(inp - k0);
            pack_rows(&x[r0 * inp..(r0 + mc) * inp], inp, k0, kc, &mut a_pack);
            for p in ps.clone() {
                let c0 = p * NR;
                let nr = NR.min(outp - c0);
                // Every panel before p is full, so p starts at c0 * inp.
                let b = &w[c0 * inp + k0 * nr..c0 * inp + (k0 + kc) * nr];
                let init = match (s, bias) {
                    (0, Some(bias)) if nr == NR => Init::Bias(&bias[c0..c0 + NR]),
                    (0, Some(bias)) => {
                        bias_pad[..nr].copy_from_slice(&bias[c0..]);
                        Init::Bias(&bias_pad)
                    }
                    (0, None) => Init::Zero,
                    _ => Init::Add,
                };
                if nr == NR {
                    for i0 in (0..mc).step_by(MR) {
                        let mr = MR.min(mc - i0);
                        let c = &mut out[(r0 + i0) * ldc + c0 - col0..];
                        // SAFETY: SIMD is only set where the CPU has AVX2 and FMA (this
                        // function's contract).
                        unsafe { tile::<SIMD>(mr, kc, &a_pack[i0 * kc..(i0 + mr) * kc], b, c, ldc, init) };
                    }
                } else {
                    for (dst, src) in b_pad.chunks_exact_mut(NR).zip(b.chunks_exact(nr)) {
                        dst[..nr].copy_from_slice(src);
                    }
                    for i0 in (0..mc).step_by(MR) {
                        let mr = MR.min(mc - i0);
                        let mut c_tile = [0.0f32; MR * NR];
                        let at = |i: usize| (r0 + i0 + i) * ldc + c0 - col0;
                        if matches!(init, Init::Add) {
                            for i in 0..mr {
                                c_tile[i * NR..i * NR + nr].copy_from_slice(&out[at(i)..at(i) + nr]);
                            }
                        }
                        // SAFETY: as above: SIMD is only set where the CPU has AVX2 and FMA.
                        unsafe { tile::<SIMD>(mr, kc, &a_pack[i0 * kc..(i0 + mr) * kc], &b_pad[..kc * NR], &mut c_tile, NR, init) };
                        for i in 0..mr {
                            out[at(i)..at(i) + nr].copy_from_slice(&c_tile[i * NR..i * NR + nr]);
                        }
                    }
                }
            }
        }
    }
}

/// Packs columns [k0, k0 + kc) of `x`'s rows as groups of `MR` rows, each [k][row] (the
/// last group holding the leftover rows as [k][rows % MR]), group g at g * MR * kc.
fn pack_rows(x: &[f32], inp: usize, k0: usize, kc: usize, a_pack: &mut [f32]) {
    let rows = x.len() / inp;
    for (g, group) in x.chunks(MR * inp).enumerate() {
        let mr = MR.min(rows - g * MR);
        let dst = &mut a_pack[g * MR * kc..(g * MR + mr) * kc];
        for (i, row) in group.chunks_exact(inp).enumerate() {
            for (k, v) in row[k0..k0 + kc].iter().enumerate() {
                dst[k * mr + i] = *v;
            }
        }
    }
}

/// One `mr` x 16 micro-tile: `a` is [kc][mr], `b` is [kc][16], `c` row i starts at i * ldc.
///
/// # Safety
/// With `SIMD` set, the CPU must support AVX2 and FMA.
#[inline(always)]
unsafe fn tile<const SIMD: bool>(mr: usize, kc: usize, a: &[f32], b: &[f32], c: &mut [f32], ldc: usize, init: Init) {
    // SAFETY (every arm): passes on the caller's guarantee about SIMD.
    unsafe {
        match mr {
            1 => micro::<SIMD, 1, 4>(kc, a, b, c, ldc, init),
            2 => micro::<SIMD, 2, 2>(kc, a, b, c, ldc, init),
            3 => micro::<SIMD, 3, 1>(kc, a, b, c, ldc, init),
            4 => micro::<SIMD, 4, 1>(kc, a, b, c, ldc, init),
            5 => micro::<SIMD, 5, 1>(kc, a, b, c, ldc, init),
            6 => micro::<SIMD, 6, 1>(kc, a, b, c, ldc, init),
            _ => unreachable!("micro-tiles have 1 to {MR} rows"),
        }
    }
}

/// An `R` x 16 micro-tile, its K loop split into `S` interleaved partial sums (so a tile of
/// one or two rows still has enough independent FMA chains to fill the pipelines).
///
/// # Safety
/// With `SIMD` set, the CPU must support AVX2 and FMA.
#[inline(always)]
unsafe fn micro<const SIMD: bool, const R: usize, const S: usize>(kc: usize, a: &[f32], b: &[f32], c: &mut [f32], ldc: usize, init: Init) {
    assert!(a.len() >= kc * R && b.len() >= kc * NR && c.len() >= (R - 1) * ldc + NR);
    if let Init::Bias(bias) = init {
        assert!(bias.len() >= NR);
    }
    #[cfg(target_arch = "x86_64")]
    if SIMD {
        // SAFETY: the caller guarantees AVX2 and FMA when SIMD is set; the lengths the
        // kernel reads and writes were asserted just above.
        unsafe { micro_avx2::<R, S>(kc, a.as_ptr(), b.as_ptr(), c.as_mut_ptr(), ldc, init) };
        return;
    }
    micro_portable::<R, S>(kc, a, b, c, ldc, init);
}

/// # Safety
/// The CPU must support AVX2 and FMA; `a` must be readable for `kc * R` floats, `b` for
/// `kc * 16`, `c` readable and writable for `(R - 1) * ldc + 16`, and a `Bias` for 16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn micro_avx2<const R: usize, const S: usize>(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, init: Init) {
    use std::arch::x86_64::*;
    let mut acc = [[[_mm256_setzero_ps(); 2]; R]; S];
    // One step of K: the 16 panel values of row k times each of the R rows' x[k].
    macro_rules! step {
        ($acc:expr, $k:expr) => {{
            let k = $k;
            // SAFETY: k < kc, so b + k * 16 + 15 < kc * 16 and a + k * R + i < kc * R,
            // inside what the caller guarantees readable; loadu needs no alignment.
            unsafe {
                let bk = b.add(k * NR);
                let (b0, b1) = (_mm256_loadu_ps(bk), _mm256_loadu_ps(bk.add(8)));
                for (i, acc) in $acc.iter_mut().enumerate() {
                    let av = _mm256_broadcast_ss(&*a.add(k * R + i));
                    acc[0] = _mm256_fmadd_ps(av, b0, acc[0]);
                    acc[1] = _mm256_fmadd_ps(av, b1, acc[1]);
                }
            }
        }};
    }
    let mut k = 0;
    while k + S <= kc {
        for (s, acc) in acc.iter_mut().enumerate() {
            step!(acc, k + s);
        }
        k += S;
    }
    while k < kc {
        step!(acc[0], k);
        k += 1;
    }
    let (first, rest) = acc.split_at_mut(1);
    for part in rest.iter() {
        for (sum, add) in first[0].iter_mut().zip(part) {
            sum[0] = _mm256_add_ps(sum[0], add[0]);
            sum[1] = _mm256_add_ps(sum[1], add[1]);
        }
    }
    for (i, sum) in first[0].iter().enumerate() {
        // SAFETY: row i < R covers c[i * ldc .. i * ldc + 16], inside (R - 1) * ldc + 16;
        // a Bias holds 16 values.
        unsafe {
            let row = c.add(i * ldc);
            let (base0, base1) = match init {
                Init::Zero => (_mm256_setzero_ps(), _mm256_setzero_ps()),
                Init::Bias(bias) => (_mm256_loadu_ps(bias.as_ptr()), _mm256_loadu_ps(bias.as_ptr().add(8))),
                Init::Add => (_mm256_loadu_ps(row), _mm256_loadu_ps(row.add(8))),
            };
            _mm256_storeu_ps(row, _mm256_add_ps(base0, sum[0]));
            _mm256_storeu_ps(row.add(8), _mm256_add_ps(base1, sum[1]));
        }
    }
}

/// The same tile without SIMD intrinsics (the compiler vectorises what it can).
fn micro_portable<const R: usize, const S: usize>(kc: usize, a: &[f32], b: &[f32], c: &mut [f32], ldc: usize, init: Init) {
    let mut acc = [[[0.0f32; NR]; R]; S];
    for (k, (ak, bk)) in a.chunks_exact(R).zip(b.chunks_exact(NR)).take(kc).enumerate() {
        for (acc, av) in acc[k % S].iter_mut().zip(ak) {
            for (sum, bv) in acc.iter_mut().zip(bk) {
                *sum += av * bv;
            }
        }
    }
    for i in 0..R {
        let row = &mut c[i * ldc..i * ldc + NR];
        for (j, out) in row.iter_mut().enumerate() {
            let sum: f32 = acc.iter().map(|part| part[i][j]).sum();
            *out = sum
                + match init {
                    Init::Zero => 0.0,
                    Init::Bias(bias) => bias[j],
                    Init::Add => *out,
                };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use apb_test_support::Rng;

    /// x W^T + b in float64, W as [out][in].
    fn reference(x: &[f32], inp: usize, w: &[f32], outp: usize, bias: Option<&[f32]>) -> Vec<f64> {
        assert_eq!(w.len(), outp * inp);
        x.chunks(inp)
            .flat_map(|row| {
                w.chunks(inp).enumerate().map(move |(o, wo)| {
                    bias.map_or(0.0, |b| b[o] as f64) + row.iter().zip(wo).map(|(a, b)| *a as f64 * *b as f64).sum::<f64>()
                })
            })
            .collect()
    }

    /// |x| |W|^T + |b| in float64: the size of what each output sums.
    fn magnitude(x: &[f32], inp: usize, w: &[f32], outp: usize, bias: Option<&[f32]>) -> Vec<f64> {
        let abs = |v: &[f32]| v.iter().map(|v| v.abs()).collect::<Vec<f32>>();
        reference(&abs(x), inp, &abs(w), outp, bias.map(abs).as_deref())
    }

    /// ||a - b|| / ||scale||.
    fn rel_error(a: &[f32], b: &[f64], scale: &[f64]) -> f64 {
        assert_eq!(a.len(), b.len());
        let num: f64 = a.iter().zip(b).map(|(x, y)| (*x as f64 - y).powi(2)).sum();
        let den: f64 = scale.iter().map(|y| y * y).sum();
        (num / den.max(f64::MIN_POSITIVE)).sqrt()
    }

    fn check(rng: &mut Rng, rows: usize, inp: usize, outp: usize, with_bias: bool, simd: bool) {
        let x = rng.uniform_vec(rows * inp, -1.0, 1.0);
        let w = rng.uniform_vec(outp * inp, -1.0, 1.0);
        let bias = with_bias.then(|| rng.uniform_vec(outp, -1.0, 1.0));
        let mut out = vec![f32::NAN; rows * outp];
        linear_with(simd, &x, inp, &pack(&w, outp, inp), outp, bias.as_deref(), &mut out);
        let expected = reference(&x, inp, &w, outp, bias.as_deref());
        let what = format!("{rows}x{inp}->{outp} bias {with_bias} simd {simd}");
        // Relative to the sums' own size (the scale f32 rounding works at) for every shape;
        // relative to the exact result once there are enough outputs that one random dot
        // product cancelling to near zero cannot dominate the norm.
        let err = rel_error(&out, &expected, &magnitude(&x, inp, &w, outp, bias.as_deref()));
        assert!(err < 1e-5, "{what}: error {err} relative to the terms' magnitude");
        if rows * outp >= 64 {
            let err = rel_error(&out, &expected, &expected);
            assert!(err < 1e-5, "{what}: relative error {err}");
        }
    }

    #[test]
    fn linear_matches_float64_on_odd_shapes() {
        let mut rng = Rng::fresh();
        for rows in [1, 2, 5, 7, 13, 100] {
            for inp in [1, 3, 64, 577] {
                for outp in [1, 15, 16, 17, 192, 1537] {
                    for with_bias in [false, true] {
                        check(&mut rng, rows, inp, outp, with_bias, true);
                    }
                }
            }
        }
    }

    #[test]
    fn portable_kernel_matches_float64_on_odd_shapes() {
        let mut rng = Rng::fresh();
        for rows in [1, 2, 5, 7, 13, 100] {
            for inp in [1, 3, 64, 577] {
                for outp in [1, 15, 17, 192] {
                    check(&mut rng, rows, inp, outp, rows % 2 == 1, false);
                }
            }
        }
    }

    #[test]
    fn row_blocks_and_k_slices_accumulate() {
        // More rows than one block per thread and a K of several slices.
        let mut rng = Rng::fresh();
        for simd in [true, false] {
            check(&mut rng, 2 * MC * par::threads() + 7, 2 * KC + 5, 33, true, simd);
        }
    }

    #[test]
    fn few_rows_with_much_work_split_the_panels() {
        // Enough multiply-adds for threads, too few rows to share out: panels are split.
        let mut rng = Rng::fresh();
        for rows in [1, 3, 2 * MR * par::threads() - 1] {
            check(&mut rng, rows, SERIAL_WORK / (rows * 1500) + 1, 1500, true, true);
        }
    }

    #[test]
    fn packing_keeps_every_value_and_an_empty_k_gives_the_bias() {
        let (outp, inp) = (37, 5);
        let w: Vec<f32> = (0..outp * inp).map(|v| v as f32).collect();
        let packed = pack(&w, outp, inp);
        let mut sorted = packed.clone();
        sorted.sort_by(f32::total_cmp);
        assert_eq!(sorted, w);
        // Panel 2 (columns 32..37, 5 wide): row k holds W[32 + j][k].
        assert_eq!(&packed[32 * inp + 5 * 3..32 * inp + 5 * 4], &[w[32 * inp + 3], w[33 * inp + 3], w[34 * inp + 3], w[35 * inp + 3], w[36 * inp + 3]]);
        let mut out = vec![f32::NAN; 2 * 3];
        linear(&[], 0, &pack(&[], 3, 0), 3, Some(&[1.0, 2.0, 3.0]), &mut out);
        assert_eq!(out, [1.0, 2.0, 3.0, 1.0, 2.0, 3.0]);
    }
}
