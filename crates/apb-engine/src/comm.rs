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
    /// Starts moving K/V blocks between hosts and returns before the data has moved, where
    /// the transport can (GPUs over NCCL, on a stream of their own): `own` (a passing block,
    /// `Option<KvBlock>`, or a ring step's held `KvBlock`) goes to every host in `to`, and a block of `from[i].1` values per K and per V comes from host `from[i].0`.
    /// Every host passes what the same plan says, so the sends and receives pair up. The
    /// caller queues work that needs none of the blocks, then finishes the transfer. `None`
    /// where the transport moves data only in step (the default; the caller then gathers).
    fn start_block_exchange(&mut self, _own: Handoff, _to: &[usize], _from: &[(usize, usize)]) -> Result<Option<Box<dyn InFlight>>> {
        Ok(None)
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
    /// All-to-all (Ulysses): `parts[r]` goes to host r; returns what every host sent this
    /// one, in rank order. The default rides on `all_gather`, every host keeping only its
    /// part: correct on any transport, at H times the bytes of point-to-point sends (which
    /// `TcpComm` overrides it with).
    fn all_to_all(&mut self, parts: Vec<Vec<f32>>) -> Result<Vec<Vec<f32>>> {
        let (rank, size) = (self.rank(), self.size());
        let payload = all_to_all_payload(parts, size)?;
        let all = self.all_gather(payload)?;
        all.iter()
            .enumerate()
            .map(|(from, p)| {
                part_for(p, rank, size).ok_or_else(|| EngineError::new(code::COMM, "", format!("host {from} sent a malformed all-to-all ({} values)", p.len())))
            })
            .collect()
    }
    /// All-to-all on values that stay where they are (device buffers): `parts[r]` is handed to
    /// host r; returns what every host handed this one, in rank order (this host's own part
    /// as it is); `None` where the transport can only move bytes (then the caller uses
    /// `all_to_all`). The default hands every host's parts to every host through
    /// `all_gather_handoff` (emulated hosts on one device: only `Arc`s move); device
    /// transports (NCCL) override it with point-to-point sends.
    fn all_to_all_handoff(&mut self, parts: Vec<Handoff>) -> Result<Option<Vec<Handoff>>> {
        let (rank, size) = (self.rank(), self.size());
        if parts.len() != size {
            return Err(EngineError::new(code::INTERNAL, "comm", format!("an all-to-all over {size} hosts was given {} parts", parts.len())));
        }
        let Some(all) = self.all_gather_handoff(Arc::new(parts))? else { return Ok(None) };
        all.iter()
            .enumerate()
            .map(|(from, h)| {
                h.downcast_ref::<Vec<Handoff>>()
                    .and_then(|p| p.get(rank))
                    .cloned()
                    .ok_or_else(|| EngineError::new(code::INTERNAL, "comm", format!("host {from} offered no all-to-all part for host {rank}")))
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }
}

/// What one host contributes to the default all-to-all: each part's length, then the parts.
/// A length travels as two f32 (its low 16 bits and the rest), exact up to 2^40 values, so
/// the header needs no other encoding than the values themselves.
fn all_to_all_payload(parts: Vec<Vec<f32>>, size: usize) -> Result<Vec<f32>> {
    if parts.len() != size {
        return Err(EngineError::new(code::INTERNAL, "comm", format!("an all-to-all over {size} hosts was given {} parts", parts.len())));
    }
    let total: usize = parts.iter().map(Vec::len).sum();
    if total as u64 >= 1 << 40 {
        return Err(EngineError::new(code::INTERNAL, "comm", format!("an all-to-all of {total} values is beyond what its header counts")));
    }
    let mut payload = Vec::with_capacity(2 * size + total);
    for p in &parts {
        let n = p.len() as u64;
        payload.extend([(n & 0xffff) as f32, (n >> 16) as f32]);
    }
    parts.into_iter().for_each(|p| payload.extend(p));
    Ok(payload)
}

/// Host `rank`'s part of another host's all-to-all payload, or None where the header does
/// not describe the payload.
fn part_for(payload: &[f32], rank: usize, size: usize) -> Option<Vec<f32>> {
    let header = payload.get(..2 * size)?;
    let lens: Vec<usize> = header
        .chunks_exact(2)
        .map(|w| {
            let whole = w.iter().all(|x| x.is_finite() && *x >= 0.0 && x.fract() == 0.0) && w[0] < 65536.0 && w[1] < 16_777_216.0;
            whole.then(|| w[0] as usize + ((w[1] as usize) << 16))
        })
        .collect::<Option<_>>()?;
    if 2 * size + lens.iter().sum::<usize>() != payload.len() {
        return None;
    }
    let start = 2 * size + lens[..rank].iter().sum::<usize>();
    Some(payload[start..start + lens[rank]].to_vec())
}

/// A value handed between emulated hosts without copying (device buffers, on one device).
pub type Handoff = Arc<dyn Any + Send + Sync>;

/// Blocks on their way between hosts (`Comm::start_block_exchange`).
pub trait InFlight: Send {
    /// Waits until this host's sends and receives are done (returning at once with an error
    /// when the group is aborted), with later device work ordered after them: the received
    /// blocks, in the order they were asked `from`.
    fn finish(self: Box<Self>) -> Result<Vec<Handoff>>;
}

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
