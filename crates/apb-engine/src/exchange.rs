//! Moving K/V blocks between hosts: APB's passing blocks (one all-gather per layer, or sends
//! in the background where the transport can) and ring attention's steps. Where the transport can hand buffers over in place (hosts
//! emulated on one device) they never leave the device; otherwise they travel as bytes,
//! taken off the device and put back on. Both ways are timed as `comm`.

use std::sync::Arc;
use std::time::Instant;

use apb_plan::layout::Layout;

use crate::backend::Backend;
use crate::comm::{Comm, Handoff, InFlight};
use crate::error::{code, EngineError, Result};
use crate::model::Model;
use crate::timing::HostTimings;

/// A host's K and V block, as handed between hosts.
pub type KvBlock<B> = (<B as Backend>::Buf, <B as Backend>::Buf);

fn wrong_payload() -> EngineError {
    EngineError::new(code::INTERNAL, "comm", "a host received a block of another backend's type")
}

/// The (K, V) inside a handoff.
pub fn kv_of<B: Backend>(h: &Handoff) -> Result<&KvBlock<B>> {
    h.downcast_ref::<KvBlock<B>>().ok_or_else(wrong_payload)
}

fn to_bytes<B: Backend>(m: &Model<B>, (k, v): &KvBlock<B>) -> Result<Vec<f32>> {
    let mut bytes = m.backend.download(k)?;
    bytes.extend(m.backend.download(v)?);
    Ok(bytes)
}

fn from_bytes<B: Backend>(m: &Model<B>, bytes: &[f32]) -> Result<KvBlock<B>> {
    let half = bytes.len() / 2;
    Ok((m.backend.upload(bytes[..half].to_vec())?, m.backend.upload(bytes[half..].to_vec())?))
}

/// Runs `f` in this host's compute turn, timed as `comm`.
pub(crate) fn moving<B: Backend, C: Comm, T>(m: &Model<B>, comm: &C, timings: &mut HostTimings, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let _turn = comm.compute_turn();
    let t = Instant::now();
    let out = f()?;
    timings.end(&m.backend, "comm", t)?;
    Ok(out)
}

/// APB's passing blocks for one host: gathered in step, or on their way.
pub enum Passing<B: Backend> {
    /// The blocks of the hosts before this one, stacked in host order (None: it keeps none).
    Ready(Option<KvBlock<B>>),
    /// Moving in the background; [`arrived`] waits for them.
    InFlight(Box<dyn InFlight>),
}

/// Starts APB's passing exchange. Where the transport moves blocks in the background, each
/// host sends its block only to the hosts that keep it (the plan's `from_hosts`) and this
/// returns at once; otherwise every host offers its block (or none) in one all-gather and
/// this host keeps the blocks of the hosts before it.
pub fn start_passing<B: Backend, C: Comm>(m: &Model<B>, comm: &mut C, layout: &Layout, host: usize, block: Option<KvBlock<B>>, timings: &mut HostTimings) -> Result<Passing<B>> {
    let kv_width = m.config.kv_width();
    let keeps = |keeper: usize, sender: usize| keeper != sender && sender < layout.hosts[keeper].passing.from_hosts as usize;
    let values = |sender: usize| layout.hosts[sender].passing.sends as usize * kv_width;
    if let Some((k, v)) = &block {
        // Receivers size their buffers from the plan; a block of another size would pair
        // sends and receives of different lengths.
        let (b, expected) = (&m.backend, values(host));
        if b.len(k) != expected || b.len(v) != expected {
            return Err(EngineError::new(code::INTERNAL, "passing", format!("host {host}'s passing block has {} and {} values; the plan gives {expected}", b.len(k), b.len(v))));
        }
    }
    let to: Vec<usize> = if block.is_some() { (0..layout.hosts.len()).filter(|&j| keeps(j, host)).collect() } else { Vec::new() };
    let from: Vec<(usize, usize)> = (0..layout.hosts.len()).filter(|&r| keeps(host, r) && values(r) > 0).map(|r| (r, values(r))).collect();
    let offered: Handoff = Arc::new(block);
    let t = Instant::now();
    if let Some(pending) = comm.start_block_exchange(offered.clone(), &to, &from)? {
        timings.add(comm.collective_phase(), t);
        return Ok(Passing::InFlight(pending));
    }
    gather_passing(m, comm, offered, layout.hosts[host].passing.from_hosts as usize, timings).map(Passing::Ready)
}

/// Waits for blocks moving in the background, timed as comm: the caller has done all it
/// could without them, so this is the transfer's share of the critical path.
fn finish<C: Comm>(comm: &C, pending: Box<dyn InFlight>, timings: &mut HostTimings) -> Result<Vec<Handoff>> {
    let t = Instant::now();
    let blocks = pending.finish()?;
    timings.add(comm.collective_phase(), t);
    Ok(blocks)
}

/// Waits for passing blocks started in the background; stacked in host order.
pub fn arrived<B: Backend, C: Comm>(m: &Model<B>, comm: &C, pending: Box<dyn InFlight>, timings: &mut HostTimings) -> Result<Option<KvBlock<B>>> {
    let blocks = finish(comm, pending, timings)?;
    if blocks.is_empty() {
        return Ok(None);
    }
    let kvs = blocks.iter().map(kv_of::<B>).collect::<Result<Vec<_>>>()?;
    stacked(m, comm, timings, &kvs).map(Some)
}

/// Blocks that are on this device, stacked in the order given ([all K], [all V]), timed as comm.
fn stacked<B: Backend, C: Comm>(m: &Model<B>, comm: &C, timings: &mut HostTimings, blocks: &[&KvBlock<B>]) -> Result<KvBlock<B>> {
    let b = &m.backend;
    let (ks, vs): (Vec<&B::Buf>, Vec<&B::Buf>) = blocks.iter().map(|(k, v)| (k, v)).unzip();
    moving(m, comm, timings, || Ok((b.concat_rows(&ks)?, b.concat_rows(&vs)?)))
}

/// Every host offers its passing block (`Option<KvBlock>`, or none); this host gets the
/// blocks of the first `from_hosts` hosts, stacked in host order.
fn gather_passing<B: Backend, C: Comm>(m: &Model<B>, comm: &mut C, offered: Handoff, from_hosts: usize, timings: &mut HostTimings) -> Result<Option<KvBlock<B>>> {
    let t = Instant::now();
    if let Some(all) = comm.all_gather_handoff(offered.clone())? {
        timings.add(comm.collective_phase(), t);
        if from_hosts == 0 {
            return Ok(None);
        }
        let blocks = all[..from_hosts].iter().map(|h| h.downcast_ref::<Option<KvBlock<B>>>().ok_or_else(wrong_payload)).collect::<Result<Vec<_>>>()?;
        let present: Vec<&KvBlock<B>> = blocks.iter().flat_map(|b| b.as_ref()).collect();
        return stacked(m, comm, timings, &present).map(Some);
    }
    let mine = offered.downcast_ref::<Option<KvBlock<B>>>().ok_or_else(wrong_payload)?;
    let bytes = match mine {
        Some(kv) => moving(m, comm, timings, || to_bytes(m, kv))?,
        None => Vec::new(),
    };
    let t = Instant::now();
    let all = comm.all_gather(bytes)?;
    timings.add(comm.collective_phase(), t);
    if from_hosts == 0 {
        return Ok(None);
    }
    let stacked = blocks_stacked(&all[..from_hosts]);
    moving(m, comm, timings, || Ok(Some(from_bytes(m, &stacked)?)))
}

/// Byte blocks ([K; V] each) stacked as [all K; all V].
fn blocks_stacked(blocks: &[Arc<Vec<f32>>]) -> Vec<f32> {
    let (mut k, mut v) = (Vec::new(), Vec::new());
    for block in blocks {
        let half = block.len() / 2;
        k.extend_from_slice(&block[..half]);
        v.extend_from_slice(&block[half..]);
    }
    k.extend(v);
    k
}

/// Starts a ring step in the background where the transport can: `held` (the block of host
/// `source`) goes to the next host while the previous host's comes here, the block of host
/// `next_source` (sizes from the plan). `None` where the transport moves data only in step
/// (then [`ring_step`], after the attention to `held`).
pub fn start_ring_step<B: Backend, C: Comm>(
    m: &Model<B>,
    comm: &mut C,
    layout: &Layout,
    (host, source, next_source): (usize, usize, usize),
    held: &Handoff,
    timings: &mut HostTimings,
) -> Result<Option<Box<dyn InFlight>>> {
    let hosts = layout.hosts.len();
    let values = |h: usize| layout.hosts[h].local_tokens as usize * m.config.kv_width();
    let (k, v) = kv_of::<B>(held)?;
    let b = &m.backend;
    if b.len(k) != values(source) || b.len(v) != values(source) {
        return Err(EngineError::new(code::INTERNAL, "ring", format!("host {host} holds host {source}'s block with {} values; the plan gives {}", b.len(k), values(source))));
    }
    let t = Instant::now();
    let pending = comm.start_block_exchange(held.clone(), &[(host + 1) % hosts], &[((host + hosts - 1) % hosts, values(next_source))])?;
    if pending.is_some() {
        timings.add(comm.collective_phase(), t);
    }
    Ok(pending)
}

/// Waits for a ring step started in the background: the previous host's block.
pub fn ring_step_arrived<C: Comm>(comm: &C, pending: Box<dyn InFlight>, timings: &mut HostTimings) -> Result<Handoff> {
    let mut blocks = finish(comm, pending, timings)?;
    match (blocks.pop(), blocks.is_empty()) {
        (Some(block), true) => Ok(block),
        _ => Err(EngineError::new(code::INTERNAL, "ring", "a ring step brought other than one block")),
    }
}

/// One ring step: hands `held` to the next host and returns the previous host's block.
pub fn ring_step<B: Backend, C: Comm>(m: &Model<B>, comm: &mut C, held: Handoff, timings: &mut HostTimings) -> Result<Handoff> {
    let t = Instant::now();
    if let Some(got) = comm.ring_pass_handoff(held.clone())? {
        timings.add(comm.collective_phase(), t);
        return Ok(got);
    }
    let bytes = moving(m, comm, timings, || to_bytes(m, kv_of::<B>(&held)?))?;
    let t = Instant::now();
    let got = comm.ring_pass(bytes)?;
    timings.add(comm.collective_phase(), t);
    let block = moving(m, comm, timings, || from_bytes(m, &got))?;
    Ok(Arc::new(block))
}

/// Every host's partial attention output and LSE for the rows after prefill (the query
/// pass, each generated token), as gathered: handed over in place where the transport can
/// (emulated hosts; NCCL, which moves them on the device), else as bytes.
pub enum Partials {
    Handed(Vec<Handoff>),
    Bytes { all: Vec<Arc<Vec<f32>>>, o_len: usize },
}

/// Offers this host's partial (o, lse) and gathers every host's, in host order.
pub fn gather_partials<B: Backend, C: Comm>(m: &Model<B>, comm: &mut C, o: B::Buf, lse: B::Buf) -> Result<Partials> {
    let offered: Handoff = Arc::new(Some((o, lse)));
    if let Some(all) = comm.all_gather_handoff(offered.clone())? {
        return Ok(Partials::Handed(all));
    }
    let (o, lse) = offered.downcast_ref::<Option<KvBlock<B>>>().and_then(|x| x.as_ref()).ok_or_else(wrong_payload)?;
    let mut payload = m.backend.download(o)?;
    let o_len = payload.len();
    payload.extend(m.backend.download(lse)?);
    Ok(Partials::Bytes { all: comm.all_gather(payload)?, o_len })
}

impl Partials {
    /// The partials merged by LSE, in host order (the same order on every host, so every
    /// host holds the same output).
    pub fn merged<B: Backend>(self, m: &Model<B>) -> Result<KvBlock<B>> {
        let (b, head_dim) = (&m.backend, m.config.head_dim);
        match self {
            Partials::Handed(all) => {
                let parts = all.iter().map(|h| h.downcast_ref::<Option<KvBlock<B>>>().and_then(|x| x.as_ref()).ok_or_else(wrong_payload)).collect::<Result<Vec<_>>>()?;
                let (first, rest) = parts.split_first().ok_or_else(|| EngineError::new(code::INTERNAL, "comm", "no partials were gathered"))?;
                // Handed-over buffers are shared: merge into a copy of the first.
                let (mut o, mut lse) = (b.concat_rows(&[&first.0])?, b.concat_rows(&[&first.1])?);
                for (po, pl) in rest {
                    b.merge(&mut o, &mut lse, po, pl, head_dim)?;
                }
                Ok((o, lse))
            }
            Partials::Bytes { all, o_len } => {
                let mut o = b.upload(all[0][..o_len].to_vec())?;
                let mut lse = b.upload_lse(all[0][o_len..].to_vec())?;
                for part in &all[1..] {
                    b.merge(&mut o, &mut lse, &b.upload(part[..o_len].to_vec())?, &b.upload_lse(part[o_len..].to_vec())?, head_dim)?;
                }
                Ok((o, lse))
            }
        }
    }
}

/// The buffers inside an all-to-all part.
pub fn parts_of<B: Backend>(h: &Handoff) -> Result<&Vec<B::Buf>> {
    h.downcast_ref::<Vec<B::Buf>>().ok_or_else(wrong_payload)
}

/// Ulysses' all-to-all: `parts[r]` are the buffers this host sends host r; returns, in rank
/// order, the buffers every host sent this one (this host's own part as it was). Handed over
/// in place where the transport can, else as bytes; `expected[s]` is the length of each
/// buffer host s sends here, which splits the bytes back into buffers and is checked on both
/// paths (hosts out of step are an error, not a wrong answer).
pub fn all_to_all<B: Backend, C: Comm>(
    m: &Model<B>,
    comm: &mut C,
    parts: Vec<Vec<B::Buf>>,
    expected: &[Vec<usize>],
    timings: &mut HostTimings,
) -> Result<Vec<Handoff>> {
    let b = &m.backend;
    let offered: Vec<Handoff> = parts.into_iter().map(|p| Arc::new(p) as Handoff).collect();
    let t = Instant::now();
    let got = match comm.all_to_all_handoff(offered.clone())? {
        Some(got) => {
            timings.add(comm.collective_phase(), t);
            got
        }
        None => {
            let bytes = moving(m, comm, timings, || {
                offered.iter().map(|h| parts_of::<B>(h)?.iter().try_fold(Vec::new(), |mut out, buf| {
                    out.extend(b.download(buf)?);
                    Ok(out)
                })).collect::<Result<Vec<_>>>()
            })?;
            drop(offered);
            let t = Instant::now();
            let all = comm.all_to_all(bytes)?;
            timings.add(comm.collective_phase(), t);
            moving(m, comm, timings, || {
                all.iter()
                    .zip(expected)
                    .enumerate()
                    .map(|(from, (bytes, lens))| {
                        if lens.iter().sum::<usize>() != bytes.len() {
                            return Err(out_of_step(from, bytes.len(), lens));
                        }
                        let mut at = 0;
                        let bufs = lens.iter().map(|&n| {
                            at += n;
                            b.upload(bytes[at - n..at].to_vec())
                        });
                        Ok(Arc::new(bufs.collect::<Result<Vec<_>>>()?) as Handoff)
                    })
                    .collect::<Result<Vec<_>>>()
            })?
        }
    };
    if got.len() != expected.len() {
        return Err(EngineError::new(code::INTERNAL, "comm", format!("an all-to-all returned {} parts for {} hosts", got.len(), expected.len())));
    }
    for (from, (h, lens)) in got.iter().zip(expected).enumerate() {
        let sizes: Vec<usize> = parts_of::<B>(h)?.iter().map(|buf| b.len(buf)).collect();
        if &sizes != lens {
            return Err(out_of_step(from, sizes.iter().sum(), lens));
        }
    }
    Ok(got)
}

fn out_of_step(from: usize, values: usize, lens: &[usize]) -> EngineError {
    EngineError::new(code::INTERNAL, "comm", format!("host {from} sent {values} values where the plan expects buffers of {lens:?}; the hosts are out of step"))
}
