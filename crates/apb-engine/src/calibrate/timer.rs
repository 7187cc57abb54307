//! Times an operation on a backend: warm-up runs first (kernel selection, pool growth, caches),
//! then the median of timed runs, each ended by `synchronize` so an asynchronous device's
//! queued work is inside the time. The median, not the mean, so one preempted run does not
//! move the rate.

use std::time::Instant;

use crate::backend::Backend;
use crate::error::Result;

/// How many runs a measurement takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repeats {
    pub warmup: usize,
    pub runs: usize,
}

/// The median wall time of `op` in milliseconds. What `op` returns is dropped after the
/// clock stops, so freeing its buffers is not timed.
pub fn median_ms<B: Backend, T>(backend: &B, repeats: Repeats, mut op: impl FnMut() -> Result<T>) -> Result<f64> {
    for _ in 0..repeats.warmup {
        drop(op()?);
    }
    backend.synchronize()?;
    let mut times_ms = Vec::with_capacity(repeats.runs.max(1));
    for _ in 0..repeats.runs.max(1) {
        let started = Instant::now();
        let out = op()?;
        backend.synchronize()?;
        times_ms.push(started.elapsed().as_secs_f64() * 1e3);
        drop(out);
    }
    Ok(median(&mut times_ms))
}

pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn the_median_of_odd_and_even_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
    }
}
