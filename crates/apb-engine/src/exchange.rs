//! Moving K/V blocks between hosts: APB's passing blocks (one all-gather per layer) and
//! ring attention's steps. Where the transport can hand buffers over in place (hosts
//! emulated on one device) they never leave the device; otherwise they travel as bytes,
//! taken off the device and put back on. Both ways are timed as `comm`.

use std::sync::Arc;
use std::time::Instant;

use crate::backend::Backend;
use crate::comm::{Comm, Handoff};
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

/// Every host offers its passing block (or none); this host gets the blocks of the first
/// `from_hosts` hosts, stacked in host order.
pub fn gather_passing<B: Backend, C: Comm>(
    m: &Model<B>,
    comm: &mut C,
    block: Option<KvBlock<B>>,
    from_hosts: usize,
    timings: &mut HostTimings,
) -> Result<Option<KvBlock<B>>> {
    let offered: Handoff = Arc::new(block);
    let t = Instant::now();
    if let Some(all) = comm.all_gather_handoff(offered.clone())? {
        timings.add(comm.collective_phase(), t);
        if from_hosts == 0 {
            return Ok(None);
        }
        let blocks = all[..from_hosts].iter().map(|h| h.downcast_ref::<Option<KvBlock<B>>>().ok_or_else(wrong_payload)).collect::<Result<Vec<_>>>()?;
        let (ks, vs): (Vec<&B::Buf>, Vec<&B::Buf>) = blocks.iter().flat_map(|b| b.as_ref()).map(|(k, v)| (k, v)).unzip();
        let b = &m.backend;
        return moving(m, comm, timings, || Ok(Some((b.concat_rows(&ks)?, b.concat_rows(&vs)?))));
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
