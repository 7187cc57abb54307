//! Tensor element types, and their decoding to f32: the plain floats of safetensors and GGUF,
//! and ggml's block formats from GGUF files (Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K).
//!
//! ggml quantizes along a tensor's contiguous dimension, so every row (the last dimension of
//! the HF shape) is a whole number of blocks. Rows therefore decode independently: they are
//! split across all cores, and each is written straight to the row it belongs to, which is
//! how llama.cpp's interleaving of Q and K rows is undone without a second copy.

use std::thread;

use half::{bf16, f16};

use crate::error::{code, EngineError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    BF16,
    F16,
    F32,
    Q8_0,
    Q4_0,
    Q4_1,
    Q4K,
    Q5K,
    Q6K,
}

impl DType {
    pub const ALL: [DType; 9] = [DType::BF16, DType::F16, DType::F32, DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q4K, DType::Q5K, DType::Q6K];

    /// The name in safetensors headers and ggml's type names, as the runtime sends it.
    pub fn name(self) -> &'static str {
        match self {
            DType::BF16 => "BF16",
            DType::F16 => "F16",
            DType::F32 => "F32",
            DType::Q8_0 => "Q8_0",
            DType::Q4_0 => "Q4_0",
            DType::Q4_1 => "Q4_1",
            DType::Q4K => "Q4_K",
            DType::Q5K => "Q5_K",
            DType::Q6K => "Q6_K",
        }
    }

    pub fn parse(s: &str) -> Option<DType> {
        DType::ALL.into_iter().find(|d| d.name() == s)
    }

    /// `parse`, with the error that names every supported type.
    pub fn parse_for(tensor: &str, s: &str) -> Result<DType> {
        DType::parse(s).ok_or_else(|| {
            let supported: Vec<&str> = DType::ALL.iter().map(|d| d.name()).collect();
            EngineError::new(code::TENSOR_DTYPE, tensor, format!("tensor {tensor} has dtype {s}; supported: {}", supported.join(", ")))
        })
    }

    /// Values per block and bytes per block; the float types are blocks of one value.
    pub fn block(self) -> (usize, usize) {
        match self {
            DType::BF16 | DType::F16 => (1, 2),
            DType::F32 => (1, 4),
            DType::Q8_0 => (32, 34),
            DType::Q4_0 => (32, 18),
            DType::Q4_1 => (32, 20),
            DType::Q4K => (256, 144),
            DType::Q5K => (256, 176),
            DType::Q6K => (256, 210),
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A tensor as rows of its last dimension, checked against its type's blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rows {
    pub count: usize,
    pub len: usize,
    pub row_bytes: usize,
    /// Rows per head where llama.cpp interleaved each head's two halves (see `source_row`).
    pub head_dim: Option<usize>,
}

impl Rows {
    /// `permute_heads` is the head count of a llama-arch GGUF q_proj (heads) or k_proj (KV heads).
    pub fn of(name: &str, dtype: DType, shape: &[usize], permute_heads: Option<usize>) -> Result<Rows> {
        let shape_error = |why: String| EngineError::new(code::TENSOR_SHAPE, name, format!("tensor {name} ({dtype} {shape:?}): {why}"));
        let (&len, outer) = shape.split_last().unwrap_or((&1, &[]));
        let count = outer.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or_else(|| shape_error("too many values".into()))?;
        let (per_block, block_bytes) = dtype.block();
        if len % per_block != 0 {
            return Err(shape_error(format!("{dtype} blocks hold {per_block} values but its rows have {len}, which is not a multiple")));
        }
        let row_bytes = len / per_block * block_bytes;
        count.checked_mul(row_bytes).ok_or_else(|| shape_error("too many bytes".into()))?;
        let head_dim = match permute_heads {
            None => None,
            Some(heads) => {
                if shape.len() != 2 || heads == 0 || count % heads != 0 || (count / heads) % 2 != 0 {
                    return Err(shape_error(format!(
                        "cannot undo llama.cpp's Q/K row permutation over {heads} heads: it needs a 2-D tensor whose {count} rows split into that many heads of an even size"
                    )));
                }
                Some(count / heads)
            }
        };
        Ok(Rows { count, len, row_bytes, head_dim })
    }

    pub fn byte_length(&self) -> usize {
        self.count * self.row_bytes
    }

    /// The stored row that holds HF row `row`. llama.cpp's converter stores HF row
    /// `h*hd + j*(hd/2) + i` (head h, half j, position i) at `h*hd + 2*i + j`, pairing
    /// the rotary halves for its interleaved RoPE; the engine's RoPE wants HF order.
    fn source_row(&self, row: usize) -> usize {
        match self.head_dim {
            None => row,
            Some(hd) => {
                let (head, within) = (row / hd, row % hd);
                let (j, i) = (within / (hd / 2), within % (hd / 2));
                head * hd + 2 * i + j
            }
        }
    }
}

/// Below this many output values a thread costs more than it saves.
const MIN_VALUES_PER_THREAD: usize = 1 << 16;

/// The first value of a tensor that is NaN or infinite: its index in HF row order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NonFinite {
    pub index: usize,
    pub value: f32,
}

/// The tensor as f32 in HF row order, decoded on all cores. `bytes` must be `rows.byte_length()`.
pub fn dequantize(bytes: &[u8], dtype: DType, rows: Rows) -> Vec<f32> {
    dequantize_checked(bytes, dtype, rows).0
}

/// `dequantize`, and the first NaN or Inf it produced. Each thread checks the rows it just
/// wrote while they are still in cache, so the check costs a fraction of the decoding.
pub fn dequantize_checked(bytes: &[u8], dtype: DType, rows: Rows) -> (Vec<f32>, Option<NonFinite>) {
    dequantize_on(bytes, dtype, rows, thread::available_parallelism().map_or(1, |n| n.get()))
}

fn dequantize_on(bytes: &[u8], dtype: DType, rows: Rows, threads: usize) -> (Vec<f32>, Option<NonFinite>) {
    assert_eq!(bytes.len(), rows.byte_length(), "dequantize: byte length was not checked");
    // calloc'd: pages are zeroed lazily by the OS, so this costs nothing up front.
    let mut out = vec![0f32; rows.count * rows.len];
    if out.is_empty() {
        return (out, None);
    }
    let threads = threads.min(out.len().div_ceil(MIN_VALUES_PER_THREAD)).clamp(1, rows.count);
    let per_thread = rows.count.div_ceil(threads);
    let bad = if threads == 1 {
        decode_rows(bytes, dtype, rows, 0, &mut out)
    } else {
        thread::scope(|s| {
            let handles: Vec<_> =
                out.chunks_mut(per_thread * rows.len).enumerate().map(|(i, chunk)| s.spawn(move || decode_rows(bytes, dtype, rows, i * per_thread, chunk))).collect();
            // Chunks are in row order, so the first chunk with a bad value holds the first one.
            handles.into_iter().filter_map(|h| h.join().unwrap_or(None)).min_by_key(|b| b.index)
        })
    };
    (out, bad)
}

const EXPONENT: u32 = 0x7F80_0000;

/// Decodes HF rows `first..` into `out` (whole rows); returns the first non-finite value.
fn decode_rows(bytes: &[u8], dtype: DType, rows: Rows, first: usize, out: &mut [f32]) -> Option<NonFinite> {
    let mut bad = None;
    for (k, y) in out.chunks_exact_mut(rows.len).enumerate() {
        let at = rows.source_row(first + k) * rows.row_bytes;
        decode_row(dtype, &bytes[at..at + rows.row_bytes], y);
        // NaN and Inf are the values whose exponent bits are all set; OR-ing that test over
        // the row is branch-free, so it vectorizes, and only a bad row is searched.
        if bad.is_none() && y.iter().fold(false, |any, v| any | (v.to_bits() & EXPONENT == EXPONENT)) {
            bad = y.iter().position(|v| !v.is_finite()).map(|j| NonFinite { index: (first + k) * rows.len + j, value: y[j] });
        }
    }
    bad
}

fn decode_row(dtype: DType, src: &[u8], dst: &mut [f32]) {
    match dtype {
        DType::F32 => blocks::<4, 1>(src, dst, |b, y| y[0] = f32::from_le_bytes(*b)),
        DType::F16 => blocks::<2, 1>(src, dst, |b, y| y[0] = f16::from_le_bytes(*b).to_f32()),
        DType::BF16 => blocks::<2, 1>(src, dst, |b, y| y[0] = bf16::from_le_bytes(*b).to_f32()),
        DType::Q8_0 => blocks(src, dst, q8_0),
        DType::Q4_0 => blocks(src, dst, q4_0),
        DType::Q4_1 => blocks(src, dst, q4_1),
        DType::Q4K => blocks(src, dst, q4_k),
        DType::Q5K => blocks(src, dst, q5_k),
        DType::Q6K => blocks(src, dst, q6_k),
    }
}

/// Fixed-size views let the compiler drop the bounds checks inside each block.
fn blocks<const B: usize, const N: usize>(src: &[u8], dst: &mut [f32], decode: impl Fn(&[u8; B], &mut [f32; N])) {
    let (src, _) = src.as_chunks::<B>();
    let (dst, _) = dst.as_chunks_mut::<N>();
    debug_assert_eq!(src.len(), dst.len());
    for (b, y) in src.iter().zip(dst) {
        decode(b, y);
    }
}

fn f16_at(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

/// {f16 d; i8 qs[32]}: x = d*q.
fn q8_0(b: &[u8; 34], y: &mut [f32; 32]) {
    let d = f16_at(b, 0);
    for (y, &q) in y.iter_mut().zip(&b[2..]) {
        *y = d * f32::from(q as i8);
    }
}

/// {f16 d; u8 qs[16]}: the low nibbles are values 0..16, the high ones 16..32; x = d*(q-8).
fn q4_0(b: &[u8; 18], y: &mut [f32; 32]) {
    let d = f16_at(b, 0);
    let (lo, hi) = y.split_at_mut(16);
    for ((lo, hi), &q) in lo.iter_mut().zip(hi).zip(&b[2..]) {
        *lo = d * (f32::from(q & 0xF) - 8.0);
        *hi = d * (f32::from(q >> 4) - 8.0);
    }
}

/// {f16 d; f16 m; u8 qs[16]}: nibbles as Q4_0; x = d*q + m.
fn q4_1(b: &[u8; 20], y: &mut [f32; 32]) {
    let (d, m) = (f16_at(b, 0), f16_at(b, 2));
    let (lo, hi) = y.split_at_mut(16);
    for ((lo, hi), &q) in lo.iter_mut().zip(hi).zip(&b[4..]) {
        *lo = d * f32::from(q & 0xF) + m;
        *hi = d * f32::from(q >> 4) + m;
    }
}

/// The 6-bit scale and min of K-quant sub-block `j` (0..8), packed in 12 bytes: bytes 0..4
/// hold scales 0..4 and 8..12 the low 4 bits of scales 4..8, with their top 2 bits in the
/// spare top bits of bytes 0..4; mins likewise in bytes 4..8 and the high nibbles of 8..12.
fn scale_min(s: &[u8], j: usize) -> (f32, f32) {
    let (sc, m) = if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        ((s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4), (s[j + 4] >> 4) | ((s[j] >> 6) << 4))
    };
    (f32::from(sc), f32::from(m))
}

/// {f16 d; f16 dmin; u8 scales[12]; u8 qs[128]}: 4 chunks of 64 values; chunk c reads
/// qs[32c..32c+32], low nibbles with sub-block 2c, high with 2c+1; x = d*sc*q - dmin*m.
/// The products are formed as ggml does ((d*sc)*q - dmin*m), so results match it bit for bit.
fn q4_k(b: &[u8; 144], y: &mut [f32; 256]) {
    let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
    let scales = &b[4..16];
    for (c, (qs, y)) in b[16..].chunks_exact(32).zip(y.chunks_exact_mut(64)).enumerate() {
        let ((s0, m0), (s1, m1)) = (scale_min(scales, 2 * c), scale_min(scales, 2 * c + 1));
        let (d0, m0, d1, m1) = (d * s0, dmin * m0, d * s1, dmin * m1);
        let (lo, hi) = y.split_at_mut(32);
        for ((lo, hi), &q) in lo.iter_mut().zip(hi).zip(qs) {
            *lo = d0 * f32::from(q & 0xF) - m0;
            *hi = d1 * f32::from(q >> 4) - m1;
        }
    }
}

/// {f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]}: Q4_K whose values get a fifth
/// bit (16) from qh[l]: bit 2c for chunk c's low nibbles, bit 2c+1 for its high ones.
fn q5_k(b: &[u8; 176], y: &mut [f32; 256]) {
    let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
    let (scales, qh) = (&b[4..16], &b[16..48]);
    for (c, (qs, y)) in b[48..].chunks_exact(32).zip(y.chunks_exact_mut(64)).enumerate() {
        let ((s0, m0), (s1, m1)) = (scale_min(scales, 2 * c), scale_min(scales, 2 * c + 1));
        let (d0, m0, d1, m1) = (d * s0, dmin * m0, d * s1, dmin * m1);
        let (lo, hi) = y.split_at_mut(32);
        for (((lo, hi), &q), &h) in lo.iter_mut().zip(hi).zip(qs).zip(qh) {
            let h = h >> (2 * c);
            *lo = d0 * f32::from((q & 0xF) | ((h & 1) << 4)) - m0;
            *hi = d1 * f32::from((q >> 4) | ((h & 2) << 3)) - m1;
        }
    }
}

/// {u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d}: two halves of 128 values; in each, value
/// l + 32g (g = 0..4) takes its low 4 bits from ql[l + 32(g%2)] (low nibble for g < 2) and
/// its top 2 from bits 2g of qh[l], minus 32; every 16 values share an i8 scale; x = d*sc*q.
fn q6_k(b: &[u8; 210], y: &mut [f32; 256]) {
    let d = f16_at(b, 208);
    for (n, y) in y.chunks_exact_mut(128).enumerate() {
        let (ql, qh, sc) = (&b[64 * n..64 * n + 64], &b[128 + 32 * n..160 + 32 * n], &b[192 + 8 * n..200 + 8 * n]);
        let scale: [f32; 8] = std::array::from_fn(|i| d * f32::from(sc[i] as i8));
        for l in 0..32 {
            let (a, c, h) = (ql[l], ql[l + 32], qh[l]);
            let q = |low: u8, high: u8| f32::from(((low & 0xF) | ((high & 3) << 4)) as i8 - 32);
            let s = l / 16;
            y[l] = scale[s] * q(a, h);
            y[l + 32] = scale[2 + s] * q(c, h >> 2);
            y[l + 64] = scale[4 + s] * q(a >> 4, h >> 4);
            y[l + 96] = scale[6 + s] * q(c >> 4, h >> 6);
        }
    }
}

#[cfg(test)]
mod tests {
    //! Every format against a plain float64 decoder written from the format description,
    //! element by element (it shares nothing with the code above but the block sizes).

    use super::*;

    use apb_test_support::Rng;

    /// An f16 of either sign with magnitude in [2^-6, 2^5): a realistic, finite scale.
    fn f16_bits(rng: &mut Rng) -> [u8; 2] {
        let r = rng.next();
        let (sign, exp, mant) = ((r & 1) as u16, 9 + (r >> 1) % 11, ((r >> 8) & 0x3FF) as u16);
        ((sign << 15) | ((exp as u16) << 10) | mant).to_le_bytes()
    }

    fn f16_ref(lo: u8, hi: u8) -> f64 {
        let bits = u16::from(lo) | (u16::from(hi) << 8);
        let sign = if bits >> 15 == 1 { -1.0 } else { 1.0 };
        let (exp, mant) = (i32::from((bits >> 10) & 0x1F), f64::from(bits & 0x3FF));
        assert!(exp != 31, "test data has no inf/nan");
        sign * if exp == 0 { mant * 2f64.powi(-24) } else { (1.0 + mant / 1024.0) * 2f64.powi(exp - 15) }
    }

    /// Random blocks with their f16 fields (at these byte offsets) set to moderate values.
    fn random_blocks(rng: &mut Rng, dtype: DType, blocks: usize) -> Vec<u8> {
        let (_, size) = dtype.block();
        let halves: &[usize] = match dtype {
            DType::Q8_0 | DType::Q4_0 => &[0],
            DType::Q4_1 | DType::Q4K | DType::Q5K => &[0, 2],
            DType::Q6K => &[208],
            _ => &[],
        };
        let mut bytes = rng.bytes(blocks * size);
        for block in bytes.chunks_exact_mut(size) {
            for &at in halves {
                block[at..at + 2].copy_from_slice(&f16_bits(rng));
            }
        }
        bytes
    }

    /// Value k of one block, straight from the format description.
    fn reference_value(dtype: DType, b: &[u8], k: usize) -> f64 {
        let half = |at: usize| f16_ref(b[at], b[at + 1]);
        let nibble = |byte: u8, high: bool| f64::from(if high { byte >> 4 } else { byte & 0x0F });
        match dtype {
            DType::Q8_0 => half(0) * f64::from(b[2 + k] as i8),
            DType::Q4_0 => half(0) * (nibble(b[2 + k % 16], k >= 16) - 8.0),
            DType::Q4_1 => half(0) * nibble(b[4 + k % 16], k >= 16) + half(2),
            DType::Q4K | DType::Q5K => {
                let (sub, l) = (k / 32, k % 32);
                let chunk = sub / 2;
                let sc = &b[4..16];
                let (scale, min) = if sub < 4 {
                    (sc[sub] & 0x3F, sc[sub + 4] & 0x3F)
                } else {
                    ((sc[sub + 4] & 0x0F) | ((sc[sub - 4] >> 6) << 4), (sc[sub + 4] >> 4) | ((sc[sub] >> 6) << 4))
                };
                let q = if dtype == DType::Q4K {
                    nibble(b[16 + 32 * chunk + l], sub % 2 == 1)
                } else {
                    let fifth = (b[16 + l] >> sub) & 1;
                    nibble(b[48 + 32 * chunk + l], sub % 2 == 1) + 16.0 * f64::from(fifth)
                };
                half(0) * f64::from(scale) * q - half(2) * f64::from(min)
            }
            DType::Q6K => {
                let (n, r) = (k / 128, k % 128);
                let (g, l) = (r / 32, r % 32);
                let low = nibble(b[64 * n + l + 32 * (g % 2)], g >= 2);
                let high = f64::from((b[128 + 32 * n + l] >> (2 * g)) & 3);
                let scale = f64::from(b[192 + k / 16] as i8);
                half(208) * scale * (low + 16.0 * high - 32.0)
            }
            _ => unreachable!("float types are not block formats"),
        }
    }

    fn reference(dtype: DType, bytes: &[u8]) -> Vec<f64> {
        let (per, size) = dtype.block();
        bytes.chunks_exact(size).flat_map(|b| (0..per).map(move |k| reference_value(dtype, b, k))).collect()
    }

    /// Distance in representable f32 values (same sign assumed unless both are zero).
    fn ulps(a: f32, b: f32) -> u64 {
        if a == b {
            return 0;
        }
        let key = |x: f32| if x.is_sign_negative() { -(i64::from(x.to_bits() & 0x7FFF_FFFF)) } else { i64::from(x.to_bits()) };
        key(a).abs_diff(key(b))
    }

    const QUANTS: [DType; 6] = [DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q4K, DType::Q5K, DType::Q6K];

    #[test]
    fn every_block_format_matches_a_float64_reference() {
        let mut rng = Rng::seeded(7);
        for dtype in QUANTS {
            let (per, size) = dtype.block();
            for (rows, blocks_per_row) in [(1, 1), (3, 2), (5, 7)] {
                let shape = [rows, blocks_per_row * per];
                let bytes = random_blocks(&mut rng, dtype, rows * blocks_per_row);
                assert_eq!(bytes.len(), rows * blocks_per_row * size);
                let layout = Rows::of("t", dtype, &shape, None).unwrap();
                assert_eq!(layout.byte_length(), bytes.len());
                let fast = dequantize(&bytes, dtype, layout);
                let slow = reference(dtype, &bytes);
                assert_eq!(fast.len(), slow.len());
                for (k, (&f, &s)) in fast.iter().zip(&slow).enumerate() {
                    assert!(ulps(f, s as f32) <= 1, "{dtype} {shape:?} value {k}: {f} vs reference {s}");
                }
            }
        }
    }

    #[test]
    fn threads_agree_with_one() {
        let mut rng = Rng::seeded(11);
        for dtype in DType::ALL {
            let (per, _) = dtype.block();
            let shape = [67, 4096usize.div_ceil(per) * per];
            let layout = Rows::of("t", dtype, &shape, None).unwrap();
            let bytes = if QUANTS.contains(&dtype) { random_blocks(&mut rng, dtype, layout.byte_length() / dtype.block().1) } else { rng.bytes(layout.byte_length()) };
            let (one, one_bad) = dequantize_on(&bytes, dtype, layout, 1);
            // Random float bytes include NaNs and Infs; the check names the first of them.
            let first_bad = one.iter().position(|v| !v.is_finite());
            assert_eq!(one_bad.map(|b| b.index), first_bad, "{dtype}: the first non-finite value");
            for threads in [2, 3, 8] {
                let (many, many_bad) = dequantize_on(&bytes, dtype, layout, threads);
                assert!(one.iter().zip(&many).all(|(a, b)| a.to_bits() == b.to_bits()), "{dtype} on {threads} threads");
                assert_eq!(many_bad.map(|b| b.index), first_bad, "{dtype} on {threads} threads: the first non-finite value");
            }
        }
    }

    /// llama.cpp's converter, written forwards: HF row h*hd + j*(hd/2) + i goes to h*hd + 2*i + j.
    fn permute_forward(hf: &[Vec<u8>], heads: usize) -> Vec<Vec<u8>> {
        let hd = hf.len() / heads;
        let mut out = vec![Vec::new(); hf.len()];
        for h in 0..heads {
            for j in 0..2 {
                for i in 0..hd / 2 {
                    out[h * hd + 2 * i + j] = hf[h * hd + j * (hd / 2) + i].clone();
                }
            }
        }
        out
    }

    #[test]
    fn undoes_llama_cpp_head_permutation() {
        let mut rng = Rng::seeded(13);
        for (dtype, heads, hd) in [(DType::F32, 3, 4), (DType::Q8_0, 2, 8), (DType::Q4K, 4, 6)] {
            let rows = heads * hd;
            let shape = [rows, dtype.block().0 * 2];
            let plain = Rows::of("q", dtype, &shape, None).unwrap();
            let hf_rows: Vec<Vec<u8>> = if dtype == DType::F32 {
                (0..rows).map(|r| (0..shape[1]).flat_map(|c| ((r * 1000 + c) as f32).to_le_bytes()).collect()).collect()
            } else {
                (0..rows).map(|_| random_blocks(&mut rng, dtype, 2)).collect()
            };
            let hf_bytes = hf_rows.concat();
            let gguf_bytes = permute_forward(&hf_rows, heads).concat();
            assert_ne!(hf_bytes, gguf_bytes);
            let layout = Rows::of("q", dtype, &shape, Some(heads)).unwrap();
            assert_eq!(layout.head_dim, Some(hd));
            assert_eq!(dequantize_on(&gguf_bytes, dtype, layout, 3).0, dequantize(&hf_bytes, dtype, plain), "{dtype}");
        }
    }

    #[test]
    fn rejects_rows_that_are_not_whole_blocks_or_heads() {
        let e = Rows::of("blk", DType::Q4K, &[4, 4000], None).unwrap_err();
        assert_eq!((e.code, e.path.as_str()), ("TENSOR_SHAPE", "blk"));
        assert!(e.message.contains("Q4_K") && e.message.contains("4000") && e.message.contains("256"), "{}", e.message);
        assert_eq!(Rows::of("b", DType::Q8_0, &[48], None).unwrap_err().code, "TENSOR_SHAPE");
        assert_eq!(Rows::of("q", DType::F32, &[12, 8], Some(5)).unwrap_err().code, "TENSOR_SHAPE");
        assert_eq!(Rows::of("q", DType::F32, &[9, 8], Some(3)).unwrap_err().code, "TENSOR_SHAPE");
        assert_eq!(Rows::of("q", DType::F32, &[12], Some(2)).unwrap_err().code, "TENSOR_SHAPE");
        assert_eq!(Rows::of("q", DType::F32, &[12, 8], Some(0)).unwrap_err().code, "TENSOR_SHAPE");
        assert_eq!(Rows::of("q", DType::Q6K, &[3, 512], None).unwrap().byte_length(), 3 * 2 * 210);
    }

    #[test]
    fn names_every_supported_type_for_an_unknown_one() {
        for d in DType::ALL {
            assert_eq!(DType::parse(d.name()), Some(d));
        }
        let e = DType::parse_for("w", "Q5_0").unwrap_err();
        assert_eq!((e.code, e.path.as_str()), ("TENSOR_DTYPE", "w"));
        assert!(DType::ALL.iter().all(|d| e.message.contains(d.name())), "{}", e.message);
        assert_eq!(DType::parse("q4_k"), None);
    }

    #[test]
    fn reads_quantized_tensors_from_a_file_and_reports_bad_entries() {
        use crate::safetensors::{TensorEntry, TensorFiles};
        let mut rng = Rng::seeded(17);
        let data = random_blocks(&mut rng, DType::Q4_1, 8);
        let file = std::env::temp_dir().join(format!("apb-quant-{}.bin", std::process::id()));
        std::fs::write(&file, [&[0u8; 3][..], &data].concat()).unwrap();
        let entry = |name: &str, dtype: &str, shape: Vec<usize>, len: usize| TensorEntry {
            name: name.to_string(),
            file: file.clone(),
            dtype: DType::parse_for(name, dtype).unwrap(),
            shape,
            offset_bytes: 3,
            byte_length: len,
            permute_heads: None,
        };
        let mut files = TensorFiles::new(vec![
            entry("ok", "Q4_1", vec![2, 128], 160),
            entry("liar", "Q4_1", vec![2, 128], 150),
            entry("ragged", "Q4_1", vec![4, 48], 160),
            entry("late", "Q8_0", vec![2, 128], 272),
        ]);
        let want: Vec<f32> = reference(DType::Q4_1, &data).into_iter().map(|v| v as f32).collect();
        assert_eq!(files.read("ok", &[2, 128]).unwrap(), want);
        let e = files.read("liar", &[2, 128]).unwrap_err();
        assert_eq!((e.code, e.path.as_str()), ("TENSOR_SHAPE", "liar"));
        assert!(e.message.contains("150") && e.message.contains("160"), "{}", e.message);
        let e = files.read("ragged", &[4, 48]).unwrap_err();
        assert_eq!(e.code, "TENSOR_SHAPE");
        assert!(e.message.contains("Q4_1") && e.message.contains("48"), "{}", e.message);
        let e = files.read("late", &[2, 128]).unwrap_err();
        assert_eq!(e.code, "MODEL_FILE");
        assert!(e.message.contains("truncated"), "{}", e.message);
        assert_eq!(DType::parse_for("x", "IQ2_XXS").unwrap_err().code, "TENSOR_DTYPE");
        std::fs::remove_file(&file).ok();
    }
}
