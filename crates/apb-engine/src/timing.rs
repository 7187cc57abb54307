//! Per-host, per-phase wall time. With emulated hosts, compute phases are timed while the
//! host holds its compute turn, so each host's numbers are its own work.

use std::time::Instant;

use crate::backend::Backend;
use crate::error::Result;

/// `comm` is time spent moving data between hosts; `wait` is time an emulated host spent
/// waiting for the others to take their compute turns (an artefact of emulation, not work).
pub const PHASES: [&str; 9] = ["embed", "qkv", "scoring", "attention", "ffn", "comm", "wait", "query", "decode"];

#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostTimings {
    pub host: usize,
    /// Milliseconds per phase, in the order of `PHASES`.
    pub ms: [f64; 9],
    /// Tokens this host computed rows for during prefill (anchor or probe + local).
    pub prefill_rows: usize,
}

impl HostTimings {
    pub fn new(host: usize) -> HostTimings {
        HostTimings { host, ..HostTimings::default() }
    }
    pub fn add(&mut self, phase: &str, started: Instant) {
        if let Some(i) = PHASES.iter().position(|p| *p == phase) {
            self.ms[i] += started.elapsed().as_secs_f64() * 1e3;
        }
    }
    /// Ends a phase of device work: waits for the work the backend has queued (an
    /// asynchronous device returns before it is done), then adds the time since `started`.
    pub fn end<B: Backend>(&mut self, backend: &B, phase: &str, started: Instant) -> Result<()> {
        backend.synchronize()?;
        self.add(phase, started);
        Ok(())
    }
    pub fn get(&self, phase: &str) -> f64 {
        PHASES.iter().position(|p| *p == phase).map_or(0.0, |i| self.ms[i])
    }
    /// Prefill time: this host's own prefill work and data movement (not emulation waits).
    pub fn prefill_ms(&self) -> f64 {
        ["embed", "qkv", "scoring", "attention", "ffn", "comm"].iter().map(|p| self.get(p)).sum()
    }
}
