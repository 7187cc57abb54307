//! How hosts talk. The forward is written SPMD: each host runs the same code with its own
//! rank and calls these collectives. `InProcess` emulates H hosts as H threads of one
//! process; `tcp::TcpComm` joins CPU hosts that are processes; apb-cuda's `NcclComm` joins GPUs.

use std::any::Any;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::control::Cancel;
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
    /// Every host contributes a value that stays where it is (a device buffer) and receives
    /// every host's, in rank order; `None` where the transport can only move bytes (then the
    /// caller uses `all_gather`). Emulated hosts on one device hand buffers over this way.
    fn all_gather_handoff(&mut self, _item: Handoff) -> Result<Option<Vec<Handoff>>> {
        Ok(None)
    }
    /// A ring step on values that stay where they are: hands `item` to the next host and
    /// returns the previous host's; `None` where the transport can only move bytes. Device
    /// transports (NCCL) override this with one send and one receive.
    fn ring_pass_handoff(&mut self, item: Handoff) -> Result<Option<Handoff>> {
        let from = (self.rank() + self.size() - 1) % self.size();
        Ok(self.all_gather_handoff(item)?.map(|all| all[from].clone()))
    }
    /// Held while this host computes. Emulated hosts take turns so that each host's timed
    /// work has the machine to itself; real hosts never wait here.
    fn compute_turn(&self) -> Option<MutexGuard<'_, ()>>;
    /// Tells the other hosts this one failed, so none waits forever at a collective.
    fn abort(&self, reason: &str);
    /// An error once this end was aborted (from another thread, or by a failed exchange):
    /// the forward checks it every layer, so an aborted request stops within one layer's
    /// compute instead of running on until its next collective.
    fn check_aborted(&self) -> Result<()> {
        Ok(())
    }
    /// The timing phase for time spent in collectives: "comm" where data really moves,
    /// "wait" where hosts are emulated and a collective only waits for the others' turns.
    fn collective_phase(&self) -> &'static str {
        "comm"
    }
}

/// A value handed between emulated hosts without copying (device buffers, on one device).
pub type Handoff = Arc<dyn Any + Send + Sync>;

/// What one host contributes to a collective: bytes, or a shared value.
#[derive(Clone)]
enum Payload {
    Bytes(Arc<Vec<f32>>),
    Handoff(Handoff),
}

struct State {
    slots: Vec<Option<Payload>>,
    arrived: usize,
    generation: u64,
    last: Arc<Vec<Payload>>,
    aborted: Option<String>,
}

pub struct Shared {
    size: usize,
    transfer: Transfer,
    state: Mutex<State>,
    changed: Condvar,
    compute: Mutex<()>,
    /// The caller's cancel flag, checked with the abort at every layer.
    cancel: Option<Cancel>,
}

/// How emulated hosts hand blocks to each other: in place (buffers stay on the device), or
/// as bytes through host memory, as a transport between machines would carry them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer {
    Handoff,
    Bytes,
}

/// One emulated host's end of an in-process group.
pub struct InProcess {
    rank: usize,
    shared: Arc<Shared>,
}

impl InProcess {
    /// Ends for `size` hosts, one per thread, handing blocks over in place.
    pub fn group(size: usize) -> Vec<InProcess> {
        InProcess::group_with(size, Transfer::Handoff)
    }

    pub fn group_with(size: usize, transfer: Transfer) -> Vec<InProcess> {
        InProcess::group_cancellable(size, transfer, None)
    }

    /// A group whose hosts stop at their next layer once `cancel` is set.
    pub fn group_cancellable(size: usize, transfer: Transfer, cancel: Option<Cancel>) -> Vec<InProcess> {
        let shared = Arc::new(Shared {
            size,
            transfer,
            state: Mutex::new(State {
                slots: vec![None; size],
                arrived: 0,
                generation: 0,
                last: Arc::new(Vec::new()),
                aborted: None,
            }),
            changed: Condvar::new(),
            compute: Mutex::new(()),
            cancel,
        });
        (0..size).map(|rank| InProcess { rank, shared: shared.clone() }).collect()
    }

    /// The barrier every collective is: each host deposits its payload; the last to arrive
    /// publishes them all and wakes the others.
    fn gather(&mut self, payload: Payload) -> Result<Vec<Payload>> {
        let mut s = self.lock()?;
        if let Some(r) = &s.aborted {
            return Err(aborted(r));
        }
        let generation = s.generation;
        s.slots[self.rank] = Some(payload);
        s.arrived += 1;
        if s.arrived == self.shared.size {
            let all: Vec<Payload> = s.slots.iter_mut().map(|x| x.take().unwrap_or(Payload::Bytes(Arc::default()))).collect();
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
        let all = self.gather(Payload::Bytes(Arc::new(data)))?;
        Ok(all.into_iter().map(|p| if let Payload::Bytes(b) = p { b } else { Arc::default() }).collect())
    }

    fn all_gather_handoff(&mut self, item: Handoff) -> Result<Option<Vec<Handoff>>> {
        if self.shared.transfer == Transfer::Bytes {
            return Ok(None);
        }
        let all = self.gather(Payload::Handoff(item))?;
        Ok(Some(all.into_iter().filter_map(|p| if let Payload::Handoff(x) = p { Some(x) } else { None }).collect()))
    }

    fn compute_turn(&self) -> Option<MutexGuard<'_, ()>> {
        // A poisoned lock only means another host panicked; the turn itself is still valid.
        Some(self.shared.compute.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn collective_phase(&self) -> &'static str {
        "wait"
    }

    fn check_aborted(&self) -> Result<()> {
        if let Some(c) = &self.shared.cancel {
            c.check("generate")?;
        }
        // Another host failed: stop now rather than compute a layer nobody will use.
        match self.lock()?.aborted.as_deref() {
            Some(r) => Err(aborted(r)),
            None => Ok(()),
        }
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
