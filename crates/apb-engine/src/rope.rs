//! RoPE inverse frequencies, with Llama 3.1's frequency-dependent scaling.

use crate::config::ModelConfig;

pub fn inv_freq(config: &ModelConfig) -> Vec<f64> {
    let d = config.head_dim as f64;
    let base: Vec<f64> = (0..config.head_dim / 2).map(|i| 1.0 / config.rope_theta.powf(2.0 * i as f64 / d)).collect();
    let Some(s) = config.rope_scaling else { return base };
    // Long wavelengths are slowed by `factor`, short ones kept, the band between blended.
    let low_freq_wavelen = s.original_max_positions / s.low_freq_factor;
    let high_freq_wavelen = s.original_max_positions / s.high_freq_factor;
    base.into_iter()
        .map(|f| {
            let wavelen = 2.0 * std::f64::consts::PI / f;
            if wavelen < high_freq_wavelen {
                f
            } else if wavelen > low_freq_wavelen {
                f / s.factor
            } else {
                let smooth = (s.original_max_positions / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
                (1.0 - smooth) * f / s.factor + smooth * f
            }
        })
        .collect()
}
