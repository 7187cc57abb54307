//! What a caller can do to a request besides receiving its tokens: cancel it from another
//! thread, and hear each host finish a layer of prefill. Both are cheap enough to check or
//! call once per layer on every host.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::error::{code, EngineError, Result};

/// A flag shared between the caller and the work it started; setting it ends the work at its
/// next check (every layer of prefill and decode, every tensor while loading).
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn new() -> Cancel {
        Cancel::default()
    }
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
    /// `CANCELLED` once cancelled; `what` names the work ("generate", "load").
    pub fn check(&self, what: &str) -> Result<()> {
        if self.is_cancelled() {
            return Err(cancelled(what));
        }
        Ok(())
    }
}

pub fn cancelled(what: &str) -> EngineError {
    EngineError::new(code::CANCELLED, "", format!("{what} was cancelled by the caller"))
}

/// One host finished one layer of prefill (`layer` counts from 1 to `layers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerDone {
    pub host: usize,
    pub hosts: usize,
    pub layer: usize,
    pub layers: usize,
}

/// A request's controls; `Hooks::default()` is none.
#[derive(Clone, Copy, Default)]
pub struct Hooks<'a> {
    pub cancel: Option<&'a Cancel>,
    /// Called from each host's thread as it finishes a layer of prefill; must not block.
    pub on_layer: Option<&'a (dyn Fn(LayerDone) + Sync)>,
}

impl Hooks<'_> {
    pub fn check_cancelled(&self, what: &str) -> Result<()> {
        self.cancel.map_or(Ok(()), |c| c.check(what))
    }
}
