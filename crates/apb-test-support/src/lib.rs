//! Test helpers shared by the apb crates (a dev-dependency only; nothing here ships).
//!
//! `Rng` is a small seeded generator (xorshift64, the state first mixed by splitmix64 so
//! small seeds give good streams). `Rng::fresh()` seeds from `APB_TEST_SEED` or the clock
//! and prints the seed, so each run checks fresh inputs and a failure can be replayed with
//! `APB_TEST_SEED=<seed>`; `Rng::seeded` gives a fixed stream.

pub struct Rng(u64);

/// Unsigned integers `Rng::range` draws.
pub trait Int: Copy {
    fn to_u64(self) -> u64;
    fn from_u64(v: u64) -> Self;
}

macro_rules! int {
    ($($t:ty),*) => {$(
        impl Int for $t {
            fn to_u64(self) -> u64 {
                self as u64
            }
            fn from_u64(v: u64) -> Self {
                v as $t
            }
        }
    )*};
}
int!(u8, u16, u32, u64, usize);

impl Rng {
    /// Seeded from `APB_TEST_SEED`, else the clock; the seed is printed.
    pub fn fresh() -> Rng {
        let seed = std::env::var("APB_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(7)
        });
        eprintln!("APB_TEST_SEED={}", seed);
        Rng::seeded(seed)
    }
    /// The same stream for the same seed.
    pub fn seeded(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Rng(if z == 0 { 1 } else { z })
    }
    /// The next 64 random bits (an endless stream, so not an `Iterator`).
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform in [lo, hi] (both included).
    pub fn range<T: Int>(&mut self, lo: T, hi: T) -> T {
        let (lo, hi) = (lo.to_u64(), hi.to_u64());
        assert!(lo <= hi, "empty range {}..={}", lo, hi);
        T::from_u64(lo + self.next() % (hi - lo).saturating_add(1).max(1))
    }
    /// One of `items`.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[(self.next() % items.len() as u64) as usize]
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.uniform().max(1e-300), self.uniform());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
    /// `n` normal values times `scale`.
    pub fn vec(&mut self, n: usize, scale: f64) -> Vec<f32> {
        (0..n).map(|_| (self.normal() * scale) as f32).collect()
    }
    /// `n` values uniform in [lo, hi).
    pub fn uniform_vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| lo + (hi - lo) * self.uniform() as f32).collect()
    }
    /// `n` token ids below `vocab`.
    pub fn tokens(&mut self, n: usize, vocab: usize) -> Vec<u32> {
        (0..n).map(|_| (self.next() % vocab as u64) as u32).collect()
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn same_seed_same_stream_and_ranges_hold() {
        let (mut a, mut b) = (Rng::seeded(3), Rng::seeded(3));
        for _ in 0..1000 {
            assert_eq!(a.next(), b.next());
        }
        assert_ne!(Rng::seeded(0).next(), Rng::seeded(1).next());
        for _ in 0..1000 {
            let r: usize = a.range(5, 9);
            assert!((5..=9).contains(&r));
            assert_eq!(a.range(4u64, 4), 4);
            a.range(0, u64::MAX);
            assert!((0.0..1.0).contains(&a.uniform()));
        }
    }
}
