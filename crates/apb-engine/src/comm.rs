//! How hosts talk. The forward is written SPMD: each host runs the same code with its own
//! rank and calls these collectives. `InProcess` emulates H hosts as H threads of one
//! process; NCCL and TCP implementations come with the GPU and multi-host issues.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::error::{code, EngineError, Result};

pub trait Comm: Send {
    fn rank(&self) -> usize;
    fn size(&self) -> usize;
    /// Every host contributes `data` and receives every contribution, in rank order.
    fn all_gather(&mut self, data: Vec<f32>) -> Result<Vec<Arc<Vec<f32>>>>;
    /// Sends `data` to the next host and returns what the previous host sent (a ring step).
    fn ring_pass(&mut self, data: Vec<f32>) -> Result<Vec<f32>> {
        let all = self.all_gather(data)?;
        let from = (self.rank() + self.size() - 1) % self.size();
        Ok(all[from].as_ref().clone())
    }
    /// Held while this host computes. Emulated hosts take turns so that each host's timed
    /// work has the machine to itself; real hosts never wait here.
    fn compute_turn(&self) -> Option<MutexGuard<'_, ()>>;
    /// Tells the other hosts this one failed, so none waits forever at a collective.
    fn abort(&self, reason: &str);
    /// The timing phase for time spent in collectives: "comm" where data really moves,
    /// "wait" where hosts are emulated and a collective only waits for the others' turns.
    fn collective_phase(&self) -> &'static str {
        "comm"
    }
}

struct State {
    slots: Vec<Option<Arc<Vec<f32>>>>,
    arrived: usize,
    generation: u64,
    last: Arc<Vec<Arc<Vec<f32>>>>,
    aborted: Option<String>,
}

pub struct Shared {
    size: usize,
    state: Mutex<State>,
    changed: Condvar,
    compute: Mutex<()>,
}

/// One emulated host's end of an in-process group.
pub struct InProcess {
    rank: usize,
    shared: Arc<Shared>,
}

impl InProcess {
    /// Ends for `size` hosts, one per thread.
    pub fn group(size: usize) -> Vec<InProcess> {
        let shared = Arc::new(Shared {
            size,
            state: Mutex::new(State {
                slots: vec![None; size],
                arrived: 0,
                generation: 0,
                last: Arc::new(Vec::new()),
                aborted: None,
            }),
            changed: Condvar::new(),
            compute: Mutex::new(()),
        });
        (0..size).map(|rank| InProcess { rank, shared: shared.clone() }).collect()
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>> {
        self.shared.state.lock().map_err(|_| EngineError::new(code::COMM, "", "a host panicked inside a collective"))
    }
}

fn aborted(reason: &str) -> EngineError {
    EngineError::new(code::COMM, "", format!("stopped because another host failed: {reason}"))
}

impl Comm for InProcess {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.shared.size
    }

    fn all_gather(&mut self, data: Vec<f32>) -> Result<Vec<Arc<Vec<f32>>>> {
        let mut s = self.lock()?;
        if let Some(r) = &s.aborted {
            return Err(aborted(r));
        }
        let generation = s.generation;
        s.slots[self.rank] = Some(Arc::new(data));
        s.arrived += 1;
        if s.arrived == self.shared.size {
            let all: Vec<Arc<Vec<f32>>> = s.slots.iter_mut().map(|x| x.take().unwrap_or_default()).collect();
            s.last = Arc::new(all);
            s.arrived = 0;
            s.generation += 1;
            self.shared.changed.notify_all();
        } else {
            while s.generation == generation && s.aborted.is_none() {
                s = self.shared.changed.wait(s).map_err(|_| EngineError::new(code::COMM, "", "a host panicked inside a collective"))?;
            }
            if let Some(r) = &s.aborted {
                return Err(aborted(r));
            }
        }
        Ok(s.last.as_ref().clone())
    }

    fn compute_turn(&self) -> Option<MutexGuard<'_, ()>> {
        // A poisoned lock only means another host panicked; the turn itself is still valid.
        Some(self.shared.compute.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn collective_phase(&self) -> &'static str {
        "wait"
    }

    fn abort(&self, reason: &str) {
        if let Ok(mut s) = self.shared.state.lock() {
            if s.aborted.is_none() {
                s.aborted = Some(format!("host {}: {reason}", self.rank));
            }
            self.shared.changed.notify_all();
        }
    }
}
