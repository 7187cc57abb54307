//! `Comm` over TCP for CPU hosts that are separate processes (on one machine or several):
//! a full mesh of sockets, one per pair of hosts, set up once per group.
//!
//! Every host binds its listener before it joins the control plane and reports the
//! address; at rendezvous each host connects to the hosts ranked below it and accepts the
//! hosts ranked above it. A handshake names the group and the rank, so a connection left
//! over from an earlier group (or a stranger) is dropped, never mistaken for a peer.
//!
//! Collectives are SPMD and happen in the same order on every host, so each socket carries
//! a FIFO of frames (a u64 length in bytes, then little-endian f32 values). Sends run on
//! their own threads while this thread receives, so two hosts sending to each other never
//! deadlock on full socket buffers. `TcpAbort` shuts every socket down from another thread:
//! a host blocked on a peer that died (or that the control plane declared dead) returns a
//! COMM error naming that peer instead of waiting forever.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::comm::Comm;
use crate::error::{code, EngineError, Result};

#[cfg(not(target_endian = "little"))]
compile_error!("the TCP data plane sends f32 values in the machine's order and expects little-endian hosts");

const MAGIC: &[u8; 8] = b"APB-TCP1";
/// Longest group id the handshake carries.
const MAX_GROUP_BYTES: usize = 256;
/// A frame larger than this is a corrupt length, not data (1M tokens of an 8B model's
/// K/V block per layer is ~1 GiB of f32).
const MAX_FRAME_BYTES: u64 = 16 << 30;

fn comm_error(message: impl Into<String>) -> EngineError {
    EngineError::new(code::COMM, "tcp", message)
}

/// Binds the listener a host reports to the control plane (`host:0` picks a free port).
pub fn listen(address: &str) -> Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(address).map_err(|e| comm_error(format!("cannot listen on {address}: {e}")))?;
    let local = listener.local_addr().map_err(|e| comm_error(format!("cannot read the listener's address: {e}")))?;
    Ok((listener, local))
}

/// Shuts a group's sockets down from any thread.
#[derive(Clone)]
pub struct TcpAbort {
    streams: Arc<Mutex<Vec<TcpStream>>>,
    reason: Arc<Mutex<Option<String>>>,
    aborted: Arc<AtomicBool>,
}

impl TcpAbort {
    fn new() -> TcpAbort {
        TcpAbort { streams: Arc::default(), reason: Arc::default(), aborted: Arc::default() }
    }

    pub fn abort(&self, reason: &str) {
        if self.aborted.swap(true, Ordering::SeqCst) {
            return;
        }
        *lock(&self.reason) = Some(reason.to_string());
        for s in lock(&self.streams).iter() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    pub fn is_aborted(&self) -> bool {
        self.aborted.load(Ordering::SeqCst)
    }

    fn reason(&self) -> Option<String> {
        lock(&self.reason).clone()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means a thread panicked while holding it; the data is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One host's end of a TCP group.
pub struct TcpComm {
    rank: usize,
    size: usize,
    /// The socket to each other host (None at this host's own rank).
    peers: Vec<Option<TcpStream>>,
    abort: TcpAbort,
}

impl TcpComm {
    /// Joins the group `group` as `rank` of `addresses.len()` hosts: connects to lower
    /// ranks, accepts higher ranks on `listener`. Gives up after `timeout_ms`, naming the
    /// hosts that never connected.
    pub fn connect(listener: &TcpListener, group: &str, rank: usize, addresses: &[String], timeout_ms: u64) -> Result<TcpComm> {
        let size = addresses.len();
        if rank >= size {
            return Err(EngineError::invalid("rank", format!("rank {rank} is outside a group of {size} hosts")));
        }
        if group.len() > MAX_GROUP_BYTES {
            return Err(EngineError::invalid("groupId", format!("the group id is {} bytes; at most {MAX_GROUP_BYTES}", group.len())));
        }
        let deadline = Instant::now() + Duration::from_millis(timeout_ms);
        let mut peers: Vec<Option<TcpStream>> = (0..size).map(|_| None).collect();
        for (peer, address) in addresses.iter().enumerate().take(rank) {
            let mut stream = connect_until(address, peer, deadline)?;
            write_hello(&mut stream, group, rank).map_err(|e| comm_error(format!("host {rank} could not greet host {peer} at {address}: {e}")))?;
            peers[peer] = Some(stream);
        }
        accept_higher(listener, group, rank, size, deadline, &mut peers)?;
        let abort = TcpAbort::new();
        for s in peers.iter().flatten() {
            s.set_nodelay(true).map_err(|e| comm_error(format!("cannot set TCP_NODELAY: {e}")))?;
            lock(&abort.streams).push(s.try_clone().map_err(|e| comm_error(format!("cannot clone a socket: {e}")))?);
        }
        Ok(TcpComm { rank, size, peers, abort })
    }

    pub fn aborter(&self) -> TcpAbort {
        self.abort.clone()
    }

    fn peer(&self, host: usize) -> Result<&TcpStream> {
        self.peers.get(host).and_then(|p| p.as_ref()).ok_or_else(|| EngineError::new(code::INTERNAL, "tcp", format!("host {} has no socket to host {host}", self.rank)))
    }

    /// A failed read or write on the socket to `peer`, said the way the user needs it.
    fn lost(&self, peer: usize, e: std::io::Error) -> EngineError {
        if let Some(reason) = self.abort.reason() {
            return comm_error(format!("host {} stopped its data plane: {reason}", self.rank));
        }
        let what = match e.kind() {
            ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::ConnectionAborted => "closed its connection (it stopped or failed)".to_string(),
            _ => format!("could not be reached: {e}"),
        };
        comm_error(format!("host {peer} {what}; host {} cannot go on", self.rank))
    }

    /// Sends each of `to` its data (on their own threads) while receiving one frame from
    /// each of `from`, in order.
    fn exchange(&self, to: &[(usize, &[f32])], from: &[usize]) -> Result<Vec<Vec<f32>>> {
        self.check_aborted()?;
        std::thread::scope(|s| {
            let senders: Vec<_> = to
                .iter()
                .map(|&(peer, data)| {
                    let stream = self.peer(peer);
                    s.spawn(move || -> Result<()> {
                        let mut stream = stream?;
                        write_frame(&mut stream, as_bytes(data)).map_err(|e| self.lost(peer, e))
                    })
                })
                .collect();
            let received: Result<Vec<Vec<f32>>> = from.iter().map(|&peer| read_frame(&mut self.peer(peer)?).map_err(|e| self.lost(peer, e))).collect();
            if let Err(e) = &received {
                // A receive failed: shut the group down so the senders stop too.
                self.abort.abort(&e.message);
            }
            let sent: Vec<Result<()>> = senders.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(EngineError::new(code::INTERNAL, "tcp", "a send thread panicked")))).collect();
            // The receive's error names the peer that failed; a send's may only echo the shutdown.
            let received = received?;
            sent.into_iter().collect::<Result<Vec<()>>>()?;
            Ok(received)
        })
    }
}

impl Comm for TcpComm {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }

    fn all_gather(&mut self, data: Vec<f32>) -> Result<Vec<Arc<Vec<f32>>>> {
        let others: Vec<usize> = (0..self.size).filter(|&h| h != self.rank).collect();
        let to: Vec<(usize, &[f32])> = others.iter().map(|&h| (h, data.as_slice())).collect();
        let mut received = self.exchange(&to, &others)?.into_iter();
        let mut mine = Some(data);
        Ok((0..self.size).map(|h| Arc::new(if h == self.rank { mine.take().unwrap_or_default() } else { received.next().unwrap_or_default() })).collect())
    }

    fn ring_pass(&mut self, data: Vec<f32>) -> Result<Vec<f32>> {
        if self.size == 1 {
            return Ok(data);
        }
        let next = (self.rank + 1) % self.size;
        let previous = (self.rank + self.size - 1) % self.size;
        Ok(self.exchange(&[(next, &data)], &[previous])?.pop().unwrap_or_default())
    }

    /// Each part goes only to its host, over that host's socket.
    fn all_to_all(&mut self, mut parts: Vec<Vec<f32>>) -> Result<Vec<Vec<f32>>> {
        if parts.len() != self.size {
            return Err(EngineError::new(code::INTERNAL, "tcp", format!("an all-to-all over {} hosts was given {} parts", self.size, parts.len())));
        }
        let others: Vec<usize> = (0..self.size).filter(|&h| h != self.rank).collect();
        let to: Vec<(usize, &[f32])> = others.iter().map(|&h| (h, parts[h].as_slice())).collect();
        let mut received = self.exchange(&to, &others)?.into_iter();
        let mut mine = Some(std::mem::take(&mut parts[self.rank]));
        Ok((0..self.size).map(|h| if h == self.rank { mine.take().unwrap_or_default() } else { received.next().unwrap_or_default() }).collect())
    }

    fn compute_turn(&self) -> Option<MutexGuard<'_, ()>> {
        None
    }

    fn abort(&self, reason: &str) {
        self.abort.abort(reason);
    }

    fn check_aborted(&self) -> Result<()> {
        if !self.abort.is_aborted() {
            return Ok(());
        }
        // The flag is set before the reason is written; a check in between still stops.
        let reason = self.abort.reason().unwrap_or_else(|| "it was aborted".to_string());
        Err(comm_error(format!("host {} stopped its data plane: {reason}", self.rank)))
    }
}

fn connect_until(address: &str, peer: usize, deadline: Instant) -> Result<TcpStream> {
    let target = address
        .to_socket_addrs()
        .map_err(|e| comm_error(format!("host {peer}'s data address '{address}' does not resolve: {e}")))?
        .next()
        .ok_or_else(|| comm_error(format!("host {peer}'s data address '{address}' resolves to nothing")))?;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match TcpStream::connect_timeout(&target, left.max(Duration::from_millis(1)).min(Duration::from_secs(2))) {
            Ok(s) => return Ok(s),
            Err(e) if Instant::now() >= deadline => return Err(comm_error(format!("could not connect to host {peer} at {address}: {e}"))),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Accepts until every higher rank has greeted with this group's id.
fn accept_higher(listener: &TcpListener, group: &str, rank: usize, size: usize, deadline: Instant, peers: &mut [Option<TcpStream>]) -> Result<()> {
    let missing = |peers: &[Option<TcpStream>]| (rank + 1..size).filter(|&h| peers[h].is_none()).collect::<Vec<_>>();
    listener.set_nonblocking(true).map_err(|e| comm_error(format!("cannot poll the listener: {e}")))?;
    let result = loop {
        let waiting = missing(peers);
        if waiting.is_empty() {
            break Ok(());
        }
        if Instant::now() >= deadline {
            let names: Vec<String> = waiting.iter().map(|h| h.to_string()).collect();
            break Err(comm_error(format!("host {rank} waited for host(s) {} to connect its data plane and gave up", names.join(", "))));
        }
        match listener.accept() {
            Ok((mut stream, _)) => {
                // A stranger or a leftover of an earlier group is dropped; only this group's hosts stay.
                if let Ok(peer) = read_hello(&mut stream, group, deadline) {
                    if peer > rank && peer < size && peers[peer].is_none() {
                        peers[peer] = Some(stream);
                    }
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => break Err(comm_error(format!("host {rank} could not accept a data-plane connection: {e}"))),
        }
    };
    listener.set_nonblocking(false).ok();
    result
}

fn write_hello(stream: &mut TcpStream, group: &str, rank: usize) -> std::io::Result<()> {
    let mut hello = MAGIC.to_vec();
    hello.extend((rank as u64).to_le_bytes());
    hello.extend((group.len() as u64).to_le_bytes());
    hello.extend(group.as_bytes());
    stream.write_all(&hello)
}

/// The greeting's rank, if it is this group's.
fn read_hello(stream: &mut TcpStream, group: &str, deadline: Instant) -> std::io::Result<usize> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(100))))?;
    let mut head = [0u8; 24];
    stream.read_exact(&mut head)?;
    let rank = u64::from_le_bytes(head[8..16].try_into().unwrap_or_default());
    let len = u64::from_le_bytes(head[16..24].try_into().unwrap_or_default());
    if &head[..8] != MAGIC || len as usize != group.len() {
        return Err(ErrorKind::InvalidData.into());
    }
    let mut name = vec![0u8; group.len()];
    stream.read_exact(&mut name)?;
    if name != group.as_bytes() {
        return Err(ErrorKind::InvalidData.into());
    }
    stream.set_read_timeout(None)?;
    Ok(rank as usize)
}

fn as_bytes(data: &[f32]) -> &[u8] {
    // SAFETY: f32 has no padding and every byte of it is initialised; u8 has alignment 1,
    // and the length covers exactly the slice's memory.
    unsafe { std::slice::from_raw_parts(data.as_ptr().cast::<u8>(), std::mem::size_of_val(data)) }
}

fn write_frame(stream: &mut &TcpStream, bytes: &[u8]) -> std::io::Result<()> {
    stream.write_all(&(bytes.len() as u64).to_le_bytes())?;
    stream.write_all(bytes)
}

fn read_frame(stream: &mut &TcpStream) -> std::io::Result<Vec<f32>> {
    let mut head = [0u8; 8];
    stream.read_exact(&mut head)?;
    let len = u64::from_le_bytes(head);
    if len % 4 != 0 || len > MAX_FRAME_BYTES {
        return Err(std::io::Error::new(ErrorKind::InvalidData, format!("a frame of {len} bytes is not a block of f32 values")));
    }
    let mut values = vec![0f32; len as usize / 4];
    // SAFETY: the Vec owns len bytes of initialised f32s; any bit pattern is a valid f32,
    // so filling them byte by byte cannot make an invalid value.
    let bytes = unsafe { std::slice::from_raw_parts_mut(values.as_mut_ptr().cast::<u8>(), len as usize) };
    stream.read_exact(bytes)?;
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(size: usize, name: &str) -> Vec<TcpComm> {
        let listeners: Vec<_> = (0..size).map(|_| listen("127.0.0.1:0").unwrap()).collect();
        let addresses: Vec<String> = listeners.iter().map(|(_, a)| a.to_string()).collect();
        std::thread::scope(|s| {
            let handles: Vec<_> = listeners.iter().enumerate().map(|(rank, (l, _))| {
                let addresses = addresses.clone();
                s.spawn(move || TcpComm::connect(l, name, rank, &addresses, 5000).unwrap())
            }).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    }

    #[test]
    fn all_gather_returns_every_contribution_in_rank_order() {
        let comms = group(3, "g1");
        let results: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = comms.into_iter().map(|mut c| s.spawn(move || {
                let r = c.rank();
                c.all_gather(vec![r as f32; r + 1]).unwrap()
            })).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for all in results {
            for (h, v) in all.iter().enumerate() {
                assert_eq!(**v, vec![h as f32; h + 1]);
            }
        }
    }

    #[test]
    fn ring_pass_hands_each_host_the_previous_hosts_block() {
        let comms = group(4, "g2");
        let results: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = comms.into_iter().map(|mut c| s.spawn(move || {
                // Large enough to fill the socket buffers both ways at once.
                let r = c.rank();
                (r, c.ring_pass(vec![r as f32; 1 << 20]).unwrap())
            })).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (r, got) in results {
            assert_eq!(got.len(), 1 << 20);
            assert!(got.iter().all(|&x| x == ((r + 3) % 4) as f32));
        }
    }

    #[test]
    fn a_dead_peer_is_named_instead_of_waited_on() {
        let mut comms = group(2, "g3");
        let survivor_end = comms.remove(0);
        drop(comms); // host 1 goes away: its sockets close
        let mut survivor = survivor_end;
        let e = survivor.all_gather(vec![1.0]).unwrap_err();
        assert_eq!(e.code, code::COMM);
        assert!(e.message.contains("host 1"), "{}", e.message);
    }

    #[test]
    fn abort_from_another_thread_unblocks_a_waiting_host() {
        let mut comms = group(2, "g4");
        let _silent = comms.pop(); // host 1 never sends
        let mut waiting = comms.pop().unwrap();
        let abort = waiting.aborter();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            abort.abort("the control plane declared host 1 dead");
        });
        let e = waiting.all_gather(vec![1.0]).unwrap_err();
        t.join().unwrap();
        assert!(e.message.contains("declared host 1 dead"), "{}", e.message);
    }

    #[test]
    fn a_connection_from_another_group_is_not_taken_for_a_peer() {
        let (l0, a0) = listen("127.0.0.1:0").unwrap();
        let (l1, a1) = listen("127.0.0.1:0").unwrap();
        let addresses = vec![a0.to_string(), a1.to_string()];
        // A stale host of an earlier group greets host 0 first.
        let mut stale = TcpStream::connect(a0).unwrap();
        write_hello(&mut stale, "old-group", 1).unwrap();
        let joined = std::thread::scope(|s| {
            let h0 = s.spawn(|| TcpComm::connect(&l0, "new-group", 0, &addresses, 5000));
            let h1 = s.spawn(|| TcpComm::connect(&l1, "new-group", 1, &addresses, 5000));
            (h0.join().unwrap(), h1.join().unwrap())
        });
        let (mut c0, mut c1) = (joined.0.unwrap(), joined.1.unwrap());
        let r = std::thread::spawn(move || c1.all_gather(vec![7.0]).unwrap());
        assert_eq!(*c0.all_gather(vec![3.0]).unwrap()[1], vec![7.0]);
        r.join().unwrap();
    }

    #[test]
    fn a_host_that_never_connects_times_out_naming_it() {
        let (l0, a0) = listen("127.0.0.1:0").unwrap();
        let (_l1, a1) = listen("127.0.0.1:0").unwrap();
        let e = TcpComm::connect(&l0, "g5", 0, &[a0.to_string(), a1.to_string()], 300).err().unwrap();
        assert!(e.message.contains("host(s) 1"), "{}", e.message);
    }
}
