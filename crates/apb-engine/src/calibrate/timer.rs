//! Times an operation on a backend: warm-up first (kernel selection, pool growth, caches, and
//! on a GPU the clock settling under sustained load), then the median of timed samples, each
//! ended by `synchronize` so an asynchronous device's queued work is inside the time.
//!
//! Samples are sustained on purpose. A GPU runs a short burst of GEMMs at its boost clock and
//! then, under the power limit a whole prefill keeps it at, at a lower one: on an H200 a few
//! back-to-back GEMMs read about 800 TFLOP/s and the same GEMMs after a second of load about
//! 690, close to what they reach inside a prefill. A profile must predict prefills, so a
//! GPU's warm-up lasts a while and each sample repeats the operation for some time. The median,
//! not the mean, so one preempted sample does not move the rate.

use std::time::Instant;

use crate::backend::Backend;
use crate::error::Result;

/// How long and how often a measurement runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Repeats {
    /// Untimed calls at least.
    pub warmup: usize,
    /// Untimed work at least, in milliseconds (0: just the calls).
    pub warmup_ms: f64,
    /// Timed samples; the result is their median.
    pub runs: usize,
    /// Work per sample at least, in milliseconds: a sample repeats the call until it is this
    /// long (0: one call per sample).
    pub sample_ms: f64,
}

/// Most calls one sample repeats: bounds a sample of a call too fast to time.
const MAX_CALLS_PER_SAMPLE: usize = 100_000;

fn elapsed_ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

/// The median wall time of one call of `op`, in milliseconds. What `op` returns is dropped
/// at once (a GPU frees it stream-ordered, without waiting).
pub fn median_ms<B: Backend, T>(backend: &B, r: Repeats, mut op: impl FnMut() -> Result<T>) -> Result<f64> {
    backend.synchronize()?;
    let warming = Instant::now();
    let mut calls = 0usize;
    // Each warm-up call is synchronized, so the time is the device's, not the launch queue's.
    while calls < r.warmup.max(usize::from(r.sample_ms > 0.0)) || elapsed_ms(warming) < r.warmup_ms {
        drop(op()?);
        backend.synchronize()?;
        calls += 1;
    }
    let per_call_ms = if calls > 0 { elapsed_ms(warming) / calls as f64 } else { 0.0 };
    let calls_per_sample = calls_per_sample(per_call_ms, r.sample_ms);
    let mut samples_ms = Vec::with_capacity(r.runs.max(1));
    for _ in 0..r.runs.max(1) {
        let started = Instant::now();
        for _ in 0..calls_per_sample {
            drop(op()?);
        }
        backend.synchronize()?;
        samples_ms.push(elapsed_ms(started) / calls_per_sample as f64);
    }
    Ok(median(&mut samples_ms))
}

/// How many calls fill a sample of `sample_ms`, given what one call took in the warm-up:
/// at least one, at most MAX_CALLS_PER_SAMPLE; one where no sample length is asked.
fn calls_per_sample(per_call_ms: f64, sample_ms: f64) -> usize {
    if sample_ms > 0.0 && per_call_ms > 0.0 {
        ((sample_ms / per_call_ms).ceil() as usize).clamp(1, MAX_CALLS_PER_SAMPLE)
    } else {
        1
    }
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
    use super::*;
    use crate::cpu::backend::Cpu;

    #[test]
    fn the_median_of_odd_and_even_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    #[test]
    fn warm_up_and_samples_call_as_often_as_asked() {
        let mut calls = 0;
        let once = Repeats { warmup: 2, warmup_ms: 0.0, runs: 3, sample_ms: 0.0 };
        median_ms(&Cpu, once, || -> Result<()> { calls += 1; Ok(()) }).unwrap();
        assert_eq!(calls, 5, "two warm-up calls, then one call per sample");
    }

    #[test]
    fn a_sample_repeats_the_call_until_it_lasts_as_asked() {
        assert_eq!(calls_per_sample(0.5, 5.0), 10);
        assert_eq!(calls_per_sample(0.3, 1.0), 4, "rounded up: a sample lasts at least as asked");
        assert_eq!(calls_per_sample(10.0, 5.0), 1, "a call longer than a sample is one call");
        assert_eq!(calls_per_sample(1e-12, 5.0), MAX_CALLS_PER_SAMPLE, "too fast to time: bounded");
        assert_eq!(calls_per_sample(0.5, 0.0), 1, "no sample length: one call");
        assert_eq!(calls_per_sample(0.0, 5.0), 1, "no warm-up time: one call");
    }

    #[test]
    fn the_time_is_one_calls_not_one_samples() {
        let mut calls = 0;
        let sustained = Repeats { warmup: 1, warmup_ms: 5.0, runs: 2, sample_ms: 5.0 };
        let ms = median_ms(&Cpu, sustained, || -> Result<()> {
            calls += 1;
            std::thread::sleep(std::time::Duration::from_micros(500));
            Ok(())
        })
        .unwrap();
        // How many calls fit depends on how long the sleeps really take (a loaded machine
        // overruns them), so only bounds that hold under any load: a warm-up call and a
        // call per sample at least, and each call's time no shorter than its sleep.
        assert!(calls >= 3, "{calls} calls: a warm-up call and one per sample at least");
        assert!(ms >= 0.5, "a call's time: {ms} ms");
    }
}
