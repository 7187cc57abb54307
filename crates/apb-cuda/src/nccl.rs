//! The engine's `Comm` over NCCL, for GPU hosts that are processes (one per GPU, on one
//! machine or several).
//!
//! Device K/V blocks (APB's passing blocks, ring's steps) never leave the GPU: NCCL moves
//! them between GPUs into freshly allocated device buffers. Host vectors (decode's partial
//! O/LSE, the sampled token) are put on the device, gathered, and taken back. Sizes may differ
//! between ranks (a host with no passing block, unequal blocks), so every collective first
//! exchanges the sizes (a few u64 per rank), then moves the data: one all-gather where every
//! rank offers the same length, else a group of broadcasts (one per rank that has data), and
//! a grouped send/receive for ring steps.
//!
//! The communicator is non-blocking (`ncclConfig_t.blocking = 0`): joining the group and
//! every collective return at once and this thread polls `ncclCommGetAsyncError` and the
//! stream (`cuStreamQuery`) with short pauses, so nothing here waits where it cannot be
//! interrupted. Joining has a deadline; a collective stops with a COMM error when NCCL reports
//! an error (a peer's connection lost) or when [`NcclAbort`] aborts the communicator from
//! another thread (a peer known to be dead), instead of waiting forever.
//!
//! NCCL is loaded at run time, the first time it is used (`libnccl.so.2`, then
//! `libnccl.so`), through its own handful of entry points rather than cudarc's loader:
//! cudarc 0.17 does not try the `libnccl.so.2` soname that NCCL installs, and it resolves
//! every symbol of NCCL 2.28 and panics when one is missing (any older NCCL). cudarc's NCCL
//! bindings give the types (`ncclUniqueId`, `ncclConfig_t`, `ncclComm_t`). A machine
//! without NCCL builds and loads apb as before and gets `NCCL_UNAVAILABLE` only here.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use apb_engine::comm::{Comm, Handoff, InFlight};
use apb_engine::error::{code, EngineError, Result};
use apb_engine::exchange::KvBlock;
use cudarc::driver::{sys as cu, CudaContext, CudaSlice, CudaStream, DevicePtr, DevicePtrMut, DeviceRepr, SyncOnDrop};
use cudarc::nccl::sys;
use libloading::Library;

use crate::backend::{Cuda, GpuBuf};
use crate::doctor::NCCL_NAMES;

/// The error code when NCCL cannot be loaded (or is too old to use).
pub use apb_engine::error::code::NCCL_UNAVAILABLE;

const PATH: &str = "nccl";

/// `ncclResult_t` values (nccl.h), kept as C ints: a value a newer NCCL adds must not be
/// read into a Rust enum that lacks it.
const NCCL_SUCCESS: c_int = 0;
const NCCL_REMOTE_ERROR: c_int = 6;
const NCCL_IN_PROGRESS: c_int = 7;

/// `ncclUint8`: every payload travels as bytes (broadcast, all-gather, send and receive
/// copy bits; NCCL itself runs them as byte copies).
const BYTES: c_int = sys::ncclDataType_t::ncclUint8 as c_int;

/// Non-blocking communicators and `ncclCommFinalize` came with NCCL 2.14.
const NCCL_MIN_VERSION: c_int = 21400;
/// `NCCL_VERSION(2, 28, 0)`: the `ncclConfig_t` layout cudarc's bindings (and ours) follow.
const CONFIG_VERSION: u32 = 22800;
/// `NCCL_CONFIG_UNDEF_INT`: "let NCCL choose".
const UNDEF_INT: c_int = c_int::MIN;

/// `CU_STREAM_LEGACY` (cuda.h; `cudaStreamLegacy` in the runtime): the legacy default stream,
/// whatever the caller's (or NCCL's) default-stream mode.
const STREAM_LEGACY: usize = 0x1;

/// How long dropping a communicator waits for `ncclCommFinalize` before aborting instead.
const FINALIZE_TIMEOUT: Duration = Duration::from_secs(5);
/// A length a peer announces beyond this is not a block but hosts out of step.
const MAX_ELEMENTS: u64 = 1 << 40;

const INSTALL: &str = "install NCCL 2.x (libnccl.so.2): `apt install libnccl2` from NVIDIA's CUDA repository, or `pip install nvidia-nccl-cu13` and put its lib directory (under site-packages/nvidia/) on LD_LIBRARY_PATH";

// --- the library --------------------------------------------------------------------------

type GetVersionFn = unsafe extern "C" fn(*mut c_int) -> c_int;
type GetUniqueIdFn = unsafe extern "C" fn(*mut sys::ncclUniqueId) -> c_int;
type CommInitRankConfigFn = unsafe extern "C" fn(*mut sys::ncclComm_t, c_int, sys::ncclUniqueId, c_int, *mut sys::ncclConfig_t) -> c_int;
type CommGetAsyncErrorFn = unsafe extern "C" fn(sys::ncclComm_t, *mut c_int) -> c_int;
type CommFn = unsafe extern "C" fn(sys::ncclComm_t) -> c_int;
type GetErrorStringFn = unsafe extern "C" fn(c_int) -> *const c_char;
type GetLastErrorFn = unsafe extern "C" fn(sys::ncclComm_t) -> *const c_char;
type GroupFn = unsafe extern "C" fn() -> c_int;
type AllGatherFn = unsafe extern "C" fn(*const c_void, *mut c_void, usize, c_int, sys::ncclComm_t, sys::cudaStream_t) -> c_int;
type BroadcastFn = unsafe extern "C" fn(*const c_void, *mut c_void, usize, c_int, c_int, sys::ncclComm_t, sys::cudaStream_t) -> c_int;
type SendFn = unsafe extern "C" fn(*const c_void, usize, c_int, c_int, sys::ncclComm_t, sys::cudaStream_t) -> c_int;
type RecvFn = unsafe extern "C" fn(*mut c_void, usize, c_int, c_int, sys::ncclComm_t, sys::cudaStream_t) -> c_int;

/// NCCL's entry points used here, with the C signatures of nccl.h (`ncclResult_t` and
/// `ncclDataType_t` are C enums, passed and returned as ints).
struct Nccl {
    soname: &'static str,
    version: String,
    get_unique_id: GetUniqueIdFn,
    comm_init_rank_config: CommInitRankConfigFn,
    comm_get_async_error: CommGetAsyncErrorFn,
    comm_abort: CommFn,
    comm_finalize: CommFn,
    comm_destroy: CommFn,
    get_error_string: GetErrorStringFn,
    /// NCCL 2.13 and newer.
    get_last_error: Option<GetLastErrorFn>,
    group_start: GroupFn,
    group_end: GroupFn,
    all_gather: AllGatherFn,
    broadcast: BroadcastFn,
    send: SendFn,
    recv: RecvFn,
}

static LOADED: OnceLock<std::result::Result<Nccl, EngineError>> = OnceLock::new();

/// NCCL, loaded the first time it is needed.
fn nccl() -> Result<&'static Nccl> {
    LOADED.get_or_init(load).as_ref().map_err(Clone::clone)
}

fn unavailable(message: String) -> EngineError {
    EngineError::new(NCCL_UNAVAILABLE, PATH, message)
}

/// `T` from `lib`, or the symbol's name where it is missing.
///
/// # Safety
/// `T` must be the C signature of the function `name` in `lib`.
unsafe fn symbol<T: Copy>(lib: &'static Library, name: &str) -> std::result::Result<T, String> {
    let c_name = format!("{name}\0");
    // SAFETY: the caller guarantees that `T` is `name`'s signature; `lib` stays loaded for
    // the rest of the process, so the pointer copied out stays valid.
    unsafe { lib.get::<T>(c_name.as_bytes()) }.map(|s| *s).map_err(|_| name.to_string())
}

fn load() -> std::result::Result<Nccl, EngineError> {
    let mut opened = None;
    let mut load_errors = Vec::new();
    for &name in NCCL_NAMES {
        // SAFETY: loading runs NCCL's initialisers, which every NCCL program runs the same
        // way (dlopen), need nothing from the caller and touch no state of ours. Nothing in
        // the library is called before a symbol is looked up with its declared signature.
        match unsafe { Library::new(name) } {
            Ok(lib) => {
                // Kept loaded for the rest of the process: NCCL's threads and teardown must
                // never find it unloaded under them.
                opened = Some((name, &*Box::leak(Box::new(lib))));
                break;
            }
            Err(e) => load_errors.push(e.to_string()),
        }
    }
    let Some((soname, lib)) = opened else {
        return Err(not_found(&load_errors));
    };
    // SAFETY: nccl.h: `ncclResult_t ncclGetVersion(int*)`, which `GetVersionFn` spells.
    let get_version: GetVersionFn = unsafe { symbol(lib, "ncclGetVersion") }
        .map_err(|_| unavailable(format!("{soname} loaded but has no ncclGetVersion, so it is not NCCL 2.x; {INSTALL}")))?;
    let mut code: c_int = 0;
    // SAFETY: `code` is a valid, writable int for the call's duration.
    let status = unsafe { get_version(&mut code) };
    if status != NCCL_SUCCESS {
        return Err(unavailable(format!("{soname} loaded but ncclGetVersion failed (status {status}); {INSTALL}")));
    }
    let version = version_string(code);
    if code < NCCL_MIN_VERSION {
        return Err(unavailable(format!(
            "{soname} is NCCL {version}; apb needs NCCL 2.14 or newer (non-blocking communicators, so a host whose peer died can stop); {INSTALL}"
        )));
    }
    let mut missing = Vec::new();
    macro_rules! required {
        ($name:literal) => {
            // SAFETY: each use below names an NCCL entry point together with the field whose
            // type spells its nccl.h signature (checked against nccl.h 2.14 through 2.28).
            match unsafe { symbol(lib, $name) } {
                Ok(f) => Some(f),
                Err(name) => {
                    missing.push(name);
                    None
                }
            }
        };
    }
    let get_unique_id = required!("ncclGetUniqueId");
    let comm_init_rank_config = required!("ncclCommInitRankConfig");
    let comm_get_async_error = required!("ncclCommGetAsyncError");
    let comm_abort = required!("ncclCommAbort");
    let comm_finalize = required!("ncclCommFinalize");
    let comm_destroy = required!("ncclCommDestroy");
    let get_error_string = required!("ncclGetErrorString");
    let group_start = required!("ncclGroupStart");
    let group_end = required!("ncclGroupEnd");
    let all_gather = required!("ncclAllGather");
    let broadcast = required!("ncclBroadcast");
    let send = required!("ncclSend");
    let recv = required!("ncclRecv");
    // SAFETY: nccl.h (2.13+): `const char* ncclGetLastError(ncclComm_t)`.
    let get_last_error = unsafe { symbol::<GetLastErrorFn>(lib, "ncclGetLastError") }.ok();
    match (
        get_unique_id,
        comm_init_rank_config,
        comm_get_async_error,
        comm_abort,
        comm_finalize,
        comm_destroy,
        get_error_string,
        group_start,
        group_end,
        all_gather,
        broadcast,
        send,
        recv,
    ) {
        (
            Some(get_unique_id),
            Some(comm_init_rank_config),
            Some(comm_get_async_error),
            Some(comm_abort),
            Some(comm_finalize),
            Some(comm_destroy),
            Some(get_error_string),
            Some(group_start),
            Some(group_end),
            Some(all_gather),
            Some(broadcast),
            Some(send),
            Some(recv),
        ) => Ok(Nccl {
            soname,
            version,
            get_unique_id,
            comm_init_rank_config,
            comm_get_async_error,
            comm_abort,
            comm_finalize,
            comm_destroy,
            get_error_string,
            get_last_error,
            group_start,
            group_end,
            all_gather,
            broadcast,
            send,
            recv,
        }),
        _ => Err(unavailable(format!("{soname} (NCCL {version}) lacks {}; apb needs NCCL 2.14 or newer; {INSTALL}", missing.join(", ")))),
    }
}

/// NCCL_UNAVAILABLE for a machine where no NCCL loads: what was looked for, where, and how to
/// fix it, in the words `apb doctor` uses.
fn not_found(load_errors: &[String]) -> EngineError {
    let info = crate::doctor::probe().nccl;
    let tried = NCCL_NAMES.join(", ");
    let loader = if info.search.loader.is_empty() { "the dynamic loader (LD_LIBRARY_PATH, the ld.so cache, /lib and /usr/lib)".to_string() } else { info.search.loader };
    let problem = info.problem.unwrap_or_else(|| format!("NCCL did not load ({})", load_errors.join("; ")));
    let fix = info.fix.unwrap_or_else(|| INSTALL.to_string());
    let looked = if problem.contains(NCCL_NAMES[0]) { String::new() } else { format!("looked for {tried}; ") };
    unavailable(format!("joining GPU hosts needs NCCL 2.x, but {problem}; {looked}searched {loader}; to fix: {fix}"))
}

/// "2.21.5" from NCCL's version code (major*10000 + minor*100 + patch; major*1000 before 2.9).
fn version_string(code: c_int) -> String {
    let v = code.max(0);
    if v < 10000 {
        format!("{}.{}.{}", v / 1000, (v % 1000) / 100, v % 100)
    } else {
        format!("{}.{}.{}", v / 10000, (v / 100) % 100, v % 100)
    }
}

fn result_name(status: c_int) -> &'static str {
    match status {
        0 => "ncclSuccess",
        1 => "ncclUnhandledCudaError",
        2 => "ncclSystemError",
        3 => "ncclInternalError",
        4 => "ncclInvalidArgument",
        5 => "ncclInvalidUsage",
        6 => "ncclRemoteError",
        7 => "ncclInProgress",
        _ => "an unknown ncclResult_t",
    }
}

/// A C string NCCL returned (static, or owned by NCCL), copied out.
fn c_text(p: *const c_char) -> Option<String> {
    if p.is_null() {
        return None;
    }
    // SAFETY: NCCL returns NUL-terminated strings that stay valid at least until the next
    // NCCL call on this thread; this copies it at once.
    let text = unsafe { CStr::from_ptr(p) }.to_string_lossy().trim().to_string();
    (!text.is_empty()).then_some(text)
}

impl Nccl {
    /// "NCCL 2.21.5 from libnccl.so.2", for messages.
    fn name(&self) -> String {
        format!("NCCL {} from {}", self.version, self.soname)
    }

    /// What went wrong, in NCCL's words: the status, its text and the last error NCCL
    /// logged for `comm` (may be null).
    fn describe(&self, comm: sys::ncclComm_t, call: &str, status: c_int) -> String {
        // SAFETY: ncclGetErrorString takes any status value and returns a static string.
        let text = c_text(unsafe { (self.get_error_string)(status) });
        // SAFETY: `comm` is null or a live communicator (callers hold the state lock, so it
        // cannot be aborted meanwhile); NCCL ignores it or reads its last error.
        let last = self.get_last_error.and_then(|f| c_text(unsafe { f(comm) }));
        let mut out = format!("{call} returned {} ({status})", result_name(status));
        if let Some(text) = text {
            out.push_str(&format!(": {text}"));
        }
        if let Some(last) = last {
            out.push_str(&format!("; NCCL's last error: {last}"));
        }
        if status == NCCL_REMOTE_ERROR {
            out.push_str(" (a peer host failed or closed its connection)");
        }
        out
    }
}

// --- the unique id ------------------------------------------------------------------------

/// 128-byte ncclUniqueId made by rank 0, as lowercase hex (256 chars).
///
/// Call it in rank 0's process: the id carries the address of a listener NCCL starts in
/// the calling process, which must stay alive until every rank has connected.
pub fn unique_id() -> Result<String> {
    let lib = nccl()?;
    let mut id = sys::ncclUniqueId { internal: [0; 128] };
    // SAFETY: `id` is a valid, writable ncclUniqueId for the call's duration.
    let status = unsafe { (lib.get_unique_id)(&mut id) };
    if status != NCCL_SUCCESS {
        return Err(EngineError::new(code::COMM, PATH, format!("making an NCCL unique id failed: {}", lib.describe(std::ptr::null_mut(), "ncclGetUniqueId", status))));
    }
    Ok(id_to_hex(&id))
}

fn id_to_hex(id: &sys::ncclUniqueId) -> String {
    id.internal.iter().map(|&b| format!("{:02x}", b as u8)).collect()
}

fn id_from_hex(hex: &str) -> Result<sys::ncclUniqueId> {
    let bad = |why: &str| EngineError::invalid("nccl.uniqueId", format!("the NCCL unique id must be 256 hex digits (128 bytes from unique_id() on rank 0); {why}"));
    let hex = hex.trim();
    if hex.len() != 256 {
        return Err(bad(&format!("got {} characters", hex.len())));
    }
    let mut id = sys::ncclUniqueId { internal: [0; 128] };
    for (i, pair) in hex.as_bytes().chunks(2).enumerate() {
        let digits = std::str::from_utf8(pair).map_err(|_| bad("it is not ASCII"))?;
        let byte = u8::from_str_radix(digits, 16).map_err(|_| bad(&format!("{digits:?} at {} is not a hex byte", 2 * i)))?;
        id.internal[i] = byte as c_char;
    }
    Ok(id)
}

// --- the communicator's state, shared with its aborter -----------------------------------

/// A live NCCL communicator handle.
struct RawComm(sys::ncclComm_t);

// SAFETY: an NCCL communicator is not tied to the thread that made it (NCCL keeps no
// thread-local state per communicator; a group is opened and closed within one call here).
// NCCL's API is not thread-safe on one communicator, so calls must not overlap: every use
// goes through `Shared::state`'s mutex, including ncclCommAbort from another thread (NCCL's
// fault-tolerance model: abort a non-blocking communicator whose work another thread waits
// on), and the handle is taken out of the state when it is aborted or destroyed, so no call
// ever sees a freed communicator.
unsafe impl Send for RawComm {}

struct State {
    /// None once aborted or destroyed.
    comm: Option<RawComm>,
    /// Why it was aborted.
    reason: Option<String>,
}

struct Shared {
    lib: &'static Nccl,
    ctx: Arc<CudaContext>,
    rank: usize,
    size: usize,
    aborted: AtomicBool,
    state: Mutex<State>,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    // A poisoned lock only means a thread panicked while holding it; the state is still valid.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn abort(&self, reason: &str) {
        let mut s = lock(&self.state);
        if s.reason.is_some() {
            return;
        }
        s.reason = Some(reason.to_string());
        self.aborted.store(true, Ordering::SeqCst);
        if let Some(comm) = s.comm.take() {
            // NCCL frees its device resources in the communicator's context.
            let _ = self.ctx.bind_to_thread();
            // SAFETY: `comm` is live and taken out of the state under the lock, so no other NCCL
            // call on it runs now or later; ncclCommAbort stops its kernels and frees it. The
            // owner may be polling the stream meanwhile: that touches no NCCL state.
            unsafe { (self.lib.comm_abort)(comm.0) };
        }
    }

    fn error(&self, message: String) -> EngineError {
        EngineError::new(code::COMM, PATH, format!("rank {} of {}: {message}", self.rank, self.size))
    }

    /// Runs `f` on the live communicator, under the state lock (so no abort frees it
    /// meanwhile). An NCCL error aborts the communicator (its peers would otherwise wait on
    /// work this rank will never do) and becomes a COMM error.
    fn call<T>(&self, what: &str, f: impl FnOnce(&Nccl, sys::ncclComm_t) -> std::result::Result<T, String>) -> Result<T> {
        let outcome = {
            let s = lock(&self.state);
            let Some(comm) = s.comm.as_ref().map(|c| c.0) else {
                return Err(self.stopped(what, &s));
            };
            f(self.lib, comm)
        };
        outcome.map_err(|detail| {
            let error = self.error(format!("{what} failed: {detail}"));
            self.abort(&error.message);
            error
        })
    }

    /// The communicator's state: NCCL_SUCCESS (idle or work queued) or NCCL_IN_PROGRESS
    /// (still joining, or still queueing work in the background); errors are COMM errors.
    fn async_state(&self, what: &str) -> Result<c_int> {
        self.call(what, |lib, comm| {
            let mut state: c_int = NCCL_SUCCESS;
            // SAFETY: `comm` is live (held under the lock); `state` is a valid out-int.
            let status = unsafe { (lib.comm_get_async_error)(comm, &mut state) };
            check(lib, comm, "ncclCommGetAsyncError", status)?;
            check(lib, comm, "the communicator", state)?;
            Ok(state)
        })
    }

    /// Polls until `done` says the GPU has passed the work before it (or the communicator
    /// fails or is aborted): first until NCCL has queued its work (non-blocking: in the
    /// background), then the GPU. Never blocks in CUDA or NCCL, so an abort stops it.
    fn wait_until(&self, what: &str, done: impl Fn() -> cu::CUresult) -> Result<()> {
        let pause = Pause::new(Duration::from_millis(1));
        loop {
            if self.aborted.load(Ordering::SeqCst) {
                return Err(self.stopped(what, &lock(&self.state)));
            }
            // Until NCCL has queued the group's kernels, an idle stream means nothing.
            if self.async_state(what)? == NCCL_SUCCESS {
                self.ctx.bind_to_thread().map_err(|e| self.error(format!("{what}: binding the GPU failed: {e:?}")))?;
                match done() {
                    cu::CUresult::CUDA_SUCCESS => return Ok(()),
                    cu::CUresult::CUDA_ERROR_NOT_READY => {}
                    other => {
                        let error = self.error(format!("{what} failed: the GPU reported {other:?} while waiting for it"));
                        self.abort(&error.message);
                        return Err(error);
                    }
                }
            }
            pause.wait();
        }
    }

    /// The error for work on a communicator that is no longer there.
    fn stopped(&self, what: &str, s: &State) -> EngineError {
        match &s.reason {
            Some(reason) => self.error(format!("{what} stopped: the NCCL communicator was aborted ({reason})")),
            None => self.error(format!("{what}: the NCCL communicator is closed")),
        }
    }
}

/// A handle another thread can use to abort the communicator, so a host blocked on a
/// collective whose peer died returns a COMM error instead of hanging.
#[derive(Clone)]
pub struct NcclAbort {
    shared: Arc<Shared>,
}

impl NcclAbort {
    /// Aborts the communicator (once; later calls do nothing): work in flight stops and every
    /// collective, now or later, returns a COMM error carrying `reason`.
    pub fn abort(&self, reason: &str) {
        self.shared.abort(reason);
    }

    pub fn is_aborted(&self) -> bool {
        self.shared.aborted.load(Ordering::SeqCst)
    }
}

/// Pauses between polls: yields for the first 200 µs (small collectives finish within
/// tens of µs), then sleeps 50 µs, then `cap` after 20 ms.
struct Pause {
    start: Instant,
    cap: Duration,
}

impl Pause {
    fn new(cap: Duration) -> Pause {
        Pause { start: Instant::now(), cap }
    }

    fn wait(&self) {
        let waited = self.start.elapsed();
        if waited < Duration::from_micros(200) {
            std::thread::yield_now();
        } else if waited < Duration::from_millis(20) {
            std::thread::sleep(Duration::from_micros(50));
        } else {
            std::thread::sleep(self.cap);
        }
    }
}

/// Whether an NCCL call's status lets work go on (success, or started in the background).
fn check(lib: &Nccl, comm: sys::ncclComm_t, call: &str, status: c_int) -> std::result::Result<(), String> {
    if status == NCCL_SUCCESS || status == NCCL_IN_PROGRESS {
        Ok(())
    } else {
        Err(lib.describe(comm, call, status))
    }
}

/// One NCCL operation of a group, on device addresses.
#[derive(Clone, Copy, Debug)]
enum Op {
    AllGather { send: cu::CUdeviceptr, recv: cu::CUdeviceptr, bytes: usize },
    /// `send` is read on `root` only; `send == recv` there is NCCL's in-place form.
    Broadcast { send: cu::CUdeviceptr, recv: cu::CUdeviceptr, bytes: usize, root: usize },
    Send { buf: cu::CUdeviceptr, bytes: usize, peer: usize },
    Recv { buf: cu::CUdeviceptr, bytes: usize, peer: usize },
}

impl Op {
    /// Queues the operation; returns the call's name and status.
    ///
    /// # Safety
    /// Every address must be a device allocation of the communicator's GPU holding at least
    /// `bytes` (`size * bytes` for an all-gather's `recv`), alive and otherwise untouched
    /// until the stream has passed the operation; `comm` must be live; ranks are < size.
    unsafe fn issue(self, lib: &Nccl, comm: sys::ncclComm_t, stream: sys::cudaStream_t) -> (&'static str, c_int) {
        let ptr = |p: cu::CUdeviceptr| p as usize as *mut c_void;
        // SAFETY: the caller's contract above is exactly what each NCCL call asks of its
        // buffers, communicator and stream; counts are in bytes (ncclUint8).
        unsafe {
            match self {
                Op::AllGather { send, recv, bytes } => ("ncclAllGather", (lib.all_gather)(ptr(send), ptr(recv), bytes, BYTES, comm, stream)),
                Op::Broadcast { send, recv, bytes, root } => ("ncclBroadcast", (lib.broadcast)(ptr(send), ptr(recv), bytes, BYTES, root as c_int, comm, stream)),
                Op::Send { buf, bytes, peer } => ("ncclSend", (lib.send)(ptr(buf), bytes, BYTES, peer as c_int, comm, stream)),
                Op::Recv { buf, bytes, peer } => ("ncclRecv", (lib.recv)(ptr(buf), bytes, BYTES, peer as c_int, comm, stream)),
            }
        }
    }
}

// --- K/V blocks as announced to peers ------------------------------------------------------

/// The element type of a device buffer, as announced to peers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Bf16 = 1,
    F32 = 2,
}

/// A buffer as announced: its element type and length.
type BufMeta = (Kind, usize);

/// Words announcing a block: [present, K kind, K len, V kind, V len].
const BLOCK_WORDS: usize = 5;

fn buf_meta(b: &GpuBuf) -> [u64; 2] {
    match b {
        GpuBuf::Bf16(s) => [Kind::Bf16 as u64, s.len() as u64],
        GpuBuf::F32(s) => [Kind::F32 as u64, s.len() as u64],
    }
}

fn block_meta(block: Option<&KvBlock<Cuda>>) -> [u64; BLOCK_WORDS] {
    match block {
        None => [0; BLOCK_WORDS],
        Some((k, v)) => {
            let (k, v) = (buf_meta(k), buf_meta(v));
            [1, k[0], k[1], v[0], v[1]]
        }
    }
}

/// A peer's announced buffer, checked: its type and length.
fn parse_buf(kind: u64, len: u64) -> std::result::Result<BufMeta, String> {
    let kind = match kind {
        1 => Kind::Bf16,
        2 => Kind::F32,
        other => return Err(format!("unknown buffer type {other}")),
    };
    if len > MAX_ELEMENTS {
        return Err(format!("a length of {len} values"));
    }
    Ok((kind, len as usize))
}

/// A peer's announced block, checked: None, or K's and V's type and length.
fn parse_block(words: &[u64]) -> std::result::Result<Option<[BufMeta; 2]>, String> {
    match words {
        [0, 0, 0, 0, 0] => Ok(None),
        [1, kk, kl, vk, vl] => Ok(Some([parse_buf(*kk, *kl)?, parse_buf(*vk, *vl)?])),
        other => Err(format!("a malformed block announcement {other:?}")),
    }
}

fn read_ptr<'a>(b: &'a GpuBuf, stream: &'a CudaStream) -> (cu::CUdeviceptr, usize, SyncOnDrop<'a>) {
    match b {
        GpuBuf::Bf16(s) => {
            let (p, g) = s.device_ptr(stream);
            (p, s.num_bytes(), g)
        }
        GpuBuf::F32(s) => {
            let (p, g) = s.device_ptr(stream);
            (p, s.num_bytes(), g)
        }
    }
}

fn write_ptr<'a>(b: &'a mut GpuBuf, stream: &'a CudaStream) -> (cu::CUdeviceptr, usize, SyncOnDrop<'a>) {
    match b {
        GpuBuf::Bf16(s) => {
            let bytes = s.num_bytes();
            let (p, g) = s.device_ptr_mut(stream);
            (p, bytes, g)
        }
        GpuBuf::F32(s) => {
            let bytes = s.num_bytes();
            let (p, g) = s.device_ptr_mut(stream);
            (p, bytes, g)
        }
    }
}

/// One NCCL group being put together: its operations on device buffers, and the guards that
/// order those buffers' uses on the backend's stream and keep them alive until it has run.
/// Empty buffers are skipped; every rank knows every length, so all skip the same ones.
struct Group<'a> {
    stream: &'a CudaStream,
    ops: Vec<Op>,
    guards: Vec<SyncOnDrop<'a>>,
}

impl<'a> Group<'a> {
    fn new(stream: &'a CudaStream) -> Group<'a> {
        Group { stream, ops: Vec::new(), guards: Vec::new() }
    }

    /// `b` to `peer`.
    fn send(&mut self, b: &'a GpuBuf, peer: usize) {
        let (p, bytes, g) = read_ptr(b, self.stream);
        self.guards.push(g);
        if bytes > 0 {
            self.ops.push(Op::Send { buf: p, bytes, peer });
        }
    }

    /// Into `b`, from `peer`.
    fn receive(&mut self, b: &'a mut GpuBuf, peer: usize) {
        let (p, bytes, g) = write_ptr(b, self.stream);
        self.guards.push(g);
        if bytes > 0 {
            self.ops.push(Op::Recv { buf: p, bytes, peer });
        }
    }

    /// This rank's `b` to every other rank (in place: NCCL only reads the root's buffer).
    fn broadcast(&mut self, b: &'a GpuBuf, root: usize) {
        let (p, bytes, g) = read_ptr(b, self.stream);
        self.guards.push(g);
        if bytes > 0 {
            self.ops.push(Op::Broadcast { send: p, recv: p, bytes, root });
        }
    }

    /// Into `b`, from `root`'s broadcast.
    fn broadcast_into(&mut self, b: &'a mut GpuBuf, root: usize) {
        let (p, bytes, g) = write_ptr(b, self.stream);
        self.guards.push(g);
        if bytes > 0 {
            self.ops.push(Op::Broadcast { send: p, recv: p, bytes, root });
        }
    }
}

// --- the communicator ---------------------------------------------------------------------

/// One GPU host's end of an NCCL group: the engine's `Comm` for hosts that are processes.
pub struct NcclComm {
    shared: Arc<Shared>,
    /// The model backend's stream: collectives are ordered with its compute.
    stream: Arc<CudaStream>,
    /// Where transfers that run beside the compute go (K/V blocks in the background).
    transfer: TransferStream,
}

/// A stream of the communicator's own, at the GPU's highest priority, so that NCCL's
/// kernels get SMs as soon as a compute kernel's blocks retire rather than after the kernel.
struct TransferStream {
    raw: cu::CUstream,
    ctx: Arc<CudaContext>,
}

// SAFETY: a CUstream handle is not tied to a thread; every use binds its context first.
unsafe impl Send for TransferStream {}

impl TransferStream {
    fn new(ctx: &Arc<CudaContext>) -> std::result::Result<TransferStream, String> {
        ctx.bind_to_thread().map_err(|e| format!("binding the GPU failed: {e:?}"))?;
        let (mut least, mut greatest) = (0, 0);
        // SAFETY: two valid out-ints; the context is current on this thread.
        unsafe { cu::cuCtxGetStreamPriorityRange(&mut least, &mut greatest) }.result().map_err(|e| format!("reading stream priorities failed: {e:?}"))?;
        let mut raw: cu::CUstream = std::ptr::null_mut();
        // SAFETY: `raw` is a valid out-pointer; the stream is destroyed in Drop, once.
        unsafe { cu::cuStreamCreateWithPriority(&mut raw, cu::CUstream_flags::CU_STREAM_NON_BLOCKING as u32, greatest) }
            .result()
            .map_err(|e| format!("creating a transfer stream failed: {e:?}"))?;
        Ok(TransferStream { raw, ctx: ctx.clone() })
    }
}

impl Drop for TransferStream {
    fn drop(&mut self) {
        let _ = self.ctx.bind_to_thread();
        // SAFETY: the stream was made in `new` and is destroyed only here; work still queued
        // on it completes first (the driver releases the stream afterwards).
        unsafe { cu::cuStreamDestroy_v2(self.raw) };
    }
}

/// K/V blocks on their way (`start_block_exchange`): what must live until the transfer
/// stream has passed them, and the event that says it has.
struct NcclInFlight {
    shared: Arc<Shared>,
    /// The backend's stream (as `stream_handle` gives it), ordered after the transfer.
    compute: usize,
    done: cudarc::driver::CudaEvent,
    /// This host's block, read by the sends.
    _sent: Handoff,
    received: Vec<Handoff>,
    /// Whether the backend's stream already waits for `done`.
    ordered: bool,
}

impl NcclInFlight {
    /// Later work on the backend's stream (reading the received blocks, freeing any of these
    /// buffers) runs after the transfer.
    fn order_compute(&mut self) -> Result<()> {
        if self.ordered {
            return Ok(());
        }
        self.shared.ctx.bind_to_thread().map_err(|e| self.shared.error(format!("K/V blocks: binding the GPU failed: {e:?}")))?;
        // SAFETY: both handles belong to this GPU's context, current on this thread; the
        // event was recorded after the transfer was queued and is alive for the call.
        unsafe { cu::cuStreamWaitEvent(std::ptr::without_provenance_mut(self.compute), self.done.cu_event(), 0) }
            .result()
            .map_err(|e| self.shared.error(format!("K/V blocks: ordering compute after the transfer failed: {e:?}")))?;
        self.ordered = true;
        Ok(())
    }
}

impl InFlight for NcclInFlight {
    fn finish(mut self: Box<Self>) -> Result<Vec<Handoff>> {
        let done = self.done.cu_event();
        // SAFETY: the event belongs to this GPU's context (bound before each query) and lives
        // as long as `self`; querying has no other effect.
        self.shared.wait_until("K/V blocks", || unsafe { cu::cuEventQuery(done) })?;
        self.order_compute()?;
        Ok(std::mem::take(&mut self.received))
    }
}

impl Drop for NcclInFlight {
    /// Dropped unfinished (a failed layer): the buffers are freed on the backend's stream,
    /// so that stream waits for the transfer first (an aborted communicator stops NCCL's
    /// kernels, so this never waits on a dead peer for long).
    fn drop(&mut self) {
        let _ = self.order_compute();
    }
}

impl NcclComm {
    /// Joins the group; `cuda` is this host's model backend (its GPU, context and stream).
    ///
    /// Every rank calls this with the same `unique_id_hex` (from [`unique_id`] in rank 0's
    /// process) and `size`, and its own `rank`. Joining does not block: if the group has not
    /// formed within `timeout_ms` (a peer never arrived or cannot be reached), the
    /// communicator is aborted and a COMM error says how long this rank waited.
    pub fn connect(cuda: &Cuda, unique_id_hex: &str, rank: usize, size: usize, timeout_ms: u64) -> Result<NcclComm> {
        if size == 0 || size > c_int::MAX as usize {
            return Err(EngineError::invalid("nccl.size", format!("an NCCL group has 1 to {} ranks, not {size}", c_int::MAX)));
        }
        if rank >= size {
            return Err(EngineError::invalid("nccl.rank", format!("rank {rank} is outside a group of {size}")));
        }
        let id = id_from_hex(unique_id_hex)?;
        let lib = nccl()?;
        let stream = cuda.gpu.stream().clone();
        let ctx = stream.context().clone();
        let shared = Arc::new(Shared {
            lib,
            ctx: ctx.clone(),
            rank,
            size,
            aborted: AtomicBool::new(false),
            state: Mutex::new(State { comm: None, reason: None }),
        });
        // NCCL takes the GPU from the calling thread's current context.
        ctx.bind_to_thread().map_err(|e| shared.error(format!("joining the group: binding the GPU failed: {e:?}")))?;
        let mut config = config();
        let mut raw: sys::ncclComm_t = std::ptr::null_mut();
        // SAFETY: `raw` and `config` are valid for the call (NCCL copies the config); the id is
        // passed by value as nccl.h declares; rank < size <= c_int::MAX. The GPU's context is
        // current on this thread.
        let status = unsafe { (lib.comm_init_rank_config)(&mut raw, size as c_int, id, rank as c_int, &mut config) };
        if status != NCCL_SUCCESS && status != NCCL_IN_PROGRESS {
            let detail = lib.describe(raw, "ncclCommInitRankConfig", status);
            if !raw.is_null() {
                // SAFETY: `raw` is the communicator NCCL just returned, used nowhere else.
                unsafe { (lib.comm_abort)(raw) };
            }
            return Err(shared.error(format!("joining the group failed ({}): {detail}", lib.name())));
        }
        if raw.is_null() {
            return Err(shared.error("joining the group failed: ncclCommInitRankConfig returned no communicator".into()));
        }
        lock(&shared.state).comm = Some(RawComm(raw));
        let transfer = match TransferStream::new(&ctx) {
            Ok(t) => t,
            Err(detail) => {
                let error = shared.error(format!("joining the group: {detail}"));
                shared.abort(&error.message);
                return Err(error);
            }
        };
        let comm = NcclComm { shared, stream, transfer };
        let started = Instant::now();
        // No deadline where the timeout is beyond what an Instant can hold.
        let deadline = started.checked_add(Duration::from_millis(timeout_ms));
        let pause = Pause::new(Duration::from_millis(5));
        loop {
            if comm.async_state("joining the group")? == NCCL_SUCCESS {
                return Ok(comm);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                let message = format!(
                    "the NCCL group did not form within {timeout_ms} ms (waited {} ms; {}): every rank must connect with the same unique id (made in rank 0's process, which must stay up) and size {size}, and the hosts must reach each other (NCCL_SOCKET_IFNAME picks the network interface; NCCL_DEBUG=INFO shows what NCCL tried)",
                    started.elapsed().as_millis(),
                    lib.name()
                );
                let error = comm.shared.error(message);
                comm.shared.abort(&error.message);
                return Err(error);
            }
            pause.wait();
        }
    }

    /// A handle another thread can use to abort the communicator (so a host blocked on a
    /// collective whose peer died returns a COMM error instead of hanging).
    pub fn aborter(&self) -> NcclAbort {
        NcclAbort { shared: self.shared.clone() }
    }

    fn error(&self, message: String) -> EngineError {
        self.shared.error(message)
    }

    fn call<T>(&self, what: &str, f: impl FnOnce(&Nccl, sys::ncclComm_t) -> std::result::Result<T, String>) -> Result<T> {
        self.shared.call(what, f)
    }

    fn async_state(&self, what: &str) -> Result<c_int> {
        self.shared.async_state(what)
    }

    /// The backend's stream as NCCL gets it. The backend queues on the context's NULL stream,
    /// which the driver API reads as the legacy default stream; it is handed over as
    /// CU_STREAM_LEGACY, which means that stream on every thread (NCCL may launch from its
    /// own threads with a non-blocking communicator), never a per-thread default stream.
    fn stream_handle(&self) -> cu::CUstream {
        let s = self.stream.cu_stream();
        if s.is_null() {
            std::ptr::without_provenance_mut(STREAM_LEGACY)
        } else {
            s
        }
    }

    fn bind(&self, what: &str) -> Result<()> {
        self.shared.ctx.bind_to_thread().map_err(|e| self.error(format!("{what}: binding the GPU failed: {e:?}")))
    }

    /// Queues `ops` as one NCCL group on the backend's stream, then waits until they are done.
    ///
    /// The caller keeps every buffer of `ops` alive and untouched until this returns.
    fn run(&self, what: &str, ops: &[Op]) -> Result<()> {
        if ops.is_empty() {
            return Ok(());
        }
        self.queue(what, ops, self.stream_handle())?;
        self.wait(what)
    }

    /// Queues `ops` as one NCCL group on `stream` and returns (NCCL may still be queueing
    /// them in the background: wait for the communicator before relying on the stream).
    ///
    /// The caller keeps every buffer of `ops` alive and untouched until the stream has
    /// passed the group.
    fn queue(&self, what: &str, ops: &[Op], stream: cu::CUstream) -> Result<()> {
        self.bind(what)?;
        let stream = stream as sys::cudaStream_t;
        self.call(what, |lib, comm| {
            // SAFETY: starts a group on this thread; it is always ended below.
            let start = unsafe { (lib.group_start)() };
            check(lib, comm, "ncclGroupStart", start)?;
            let mut failed = Ok(());
            for op in ops {
                // SAFETY: the callers build every op from live device buffers of this GPU,
                // sized as the op says, and keep them alive until `wait` below has seen the
                // stream pass the group; `comm` is live under the lock; ranks come from
                // 0..size.
                let (name, status) = unsafe { op.issue(lib, comm, stream) };
                if let Err(e) = check(lib, comm, name, status) {
                    failed = Err(e);
                    break;
                }
            }
            // SAFETY: ends the group started above (also after a failed op, which NCCL
            // requires to release the group).
            let end = unsafe { (lib.group_end)() };
            failed?;
            check(lib, comm, "ncclGroupEnd", end)
        })
    }

    /// Waits for the backend's stream without blocking in CUDA or NCCL: polls the
    /// communicator and the stream, and stops at once when the communicator is aborted.
    fn wait(&self, what: &str) -> Result<()> {
        let stream = self.stream_handle();
        // SAFETY: the stream belongs to this GPU's context (bound by `wait_until` before each
        // query) and outlives the call; querying has no other effect.
        self.shared.wait_until(what, || unsafe { cu::cuStreamQuery(stream) })
    }

    /// Best effort, on a failed transfer: the backend's stream waits for what the transfer
    /// stream holds now, so buffers freed on it are not freed under a transfer.
    fn order_after_transfers(&self) {
        let Ok(event) = self.shared.ctx.new_event(None) else { return };
        // SAFETY: the event and both streams belong to this GPU's context, current on this
        // thread (bound before the transfer was queued); the event lives through both calls.
        unsafe {
            if cu::cuEventRecord(event.cu_event(), self.transfer.raw) == cu::CUresult::CUDA_SUCCESS {
                let _ = cu::cuStreamWaitEvent(self.stream_handle(), event.cu_event(), 0);
            }
        }
    }

    fn alloc<T: DeviceRepr>(&self, len: usize, whose: &str) -> Result<CudaSlice<T>> {
        // SAFETY: every buffer allocated here is fully written by the collective it receives
        // before anything reads it; one whose collective fails is dropped unread.
        unsafe { self.stream.alloc::<T>(len) }
            .map_err(|e| self.error(format!("allocating {} bytes for {whose} failed: {e:?}", len * std::mem::size_of::<T>())))
    }

    fn alloc_buf(&self, (kind, len): BufMeta, whose: &str) -> Result<GpuBuf> {
        Ok(match kind {
            Kind::Bf16 => GpuBuf::Bf16(self.alloc::<u16>(len, whose)?),
            Kind::F32 => GpuBuf::F32(self.alloc::<f32>(len, whose)?),
        })
    }

    fn upload<T: DeviceRepr>(&self, data: &[T], what: &str) -> Result<CudaSlice<T>> {
        self.stream.memcpy_stod(data).map_err(|e| self.error(format!("{what}: copying to the GPU failed: {e:?}")))
    }

    fn download<T: DeviceRepr + Default + Clone>(&self, data: &CudaSlice<T>, what: &str) -> Result<Vec<T>> {
        self.stream.memcpy_dtov(data).map_err(|e| self.error(format!("{what}: copying from the GPU failed: {e:?}")))
    }

    /// Every rank's `words`, in rank order (`size * words.len()` values).
    fn exchange_all(&self, words: &[u64], what: &str) -> Result<Vec<u64>> {
        let send = self.upload(words, what)?;
        let mut recv = self.alloc::<u64>(words.len() * self.shared.size, what)?;
        {
            let (send_ptr, _read) = send.device_ptr(&self.stream);
            let (recv_ptr, _write) = recv.device_ptr_mut(&self.stream);
            self.run(what, &[Op::AllGather { send: send_ptr, recv: recv_ptr, bytes: std::mem::size_of_val(words) }])?;
        }
        self.download(&recv, what)
    }

    /// Sends `words` to rank `next` and returns what rank `prev` sent (as many words).
    fn exchange_ring(&self, words: &[u64], next: usize, prev: usize, what: &str) -> Result<Vec<u64>> {
        let send = self.upload(words, what)?;
        let mut recv = self.alloc::<u64>(words.len(), what)?;
        {
            let bytes = std::mem::size_of_val(words);
            let (send_ptr, _read) = send.device_ptr(&self.stream);
            let (recv_ptr, _write) = recv.device_ptr_mut(&self.stream);
            self.run(what, &[Op::Send { buf: send_ptr, bytes, peer: next }, Op::Recv { buf: recv_ptr, bytes, peer: prev }])?;
        }
        self.download(&recv, what)
    }

    fn ensure_open(&self, what: &str) -> Result<()> {
        let s = lock(&self.shared.state);
        if s.comm.is_none() {
            return Err(self.shared.stopped(what, &s));
        }
        Ok(())
    }

    fn wrong_item(&self, what: &str, expected: &str) -> EngineError {
        EngineError::new(code::INTERNAL, PATH, format!("rank {} of {}: {what} takes {expected} on the CUDA backend; it was handed another type", self.shared.rank, self.shared.size))
    }

    fn out_of_step(&self, what: &str, from: usize, detail: String) -> EngineError {
        let error = self.error(format!("{what}: rank {from} announced {detail}; the hosts' collectives are out of step"));
        self.shared.abort(&error.message);
        error
    }
}

/// `NCCL_CONFIG_INITIALIZER` with `blocking = 0`. `size` and `version` say which fields
/// this layout has; an older NCCL reads only the fields it knows (all others are "undefined",
/// that is NCCL's defaults).
fn config() -> sys::ncclConfig_t {
    sys::ncclConfig_t {
        size: std::mem::size_of::<sys::ncclConfig_t>(),
        magic: 0xcafe_beef,
        version: CONFIG_VERSION,
        blocking: 0,
        cgaClusterSize: UNDEF_INT,
        minCTAs: UNDEF_INT,
        maxCTAs: UNDEF_INT,
        netName: std::ptr::null(),
        splitShare: UNDEF_INT,
        trafficClass: UNDEF_INT,
        commName: std::ptr::null(),
        collnetEnable: UNDEF_INT,
        CTAPolicy: UNDEF_INT,
        shrinkShare: UNDEF_INT,
        nvlsCTAs: UNDEF_INT,
        nChannelsPerNetPeer: UNDEF_INT,
        nvlinkCentricSched: UNDEF_INT,
    }
}

impl Comm for NcclComm {
    fn rank(&self) -> usize {
        self.shared.rank
    }

    fn size(&self) -> usize {
        self.shared.size
    }

    /// Host vectors: lengths first (one u64 per rank), then one all-gather where all are
    /// equal, else a group of broadcasts, each rank's into its own buffer.
    fn all_gather(&mut self, data: Vec<f32>) -> Result<Vec<Arc<Vec<f32>>>> {
        const WHAT: &str = "all_gather";
        self.ensure_open(WHAT)?;
        let (rank, size) = (self.shared.rank, self.shared.size);
        let mine = Arc::new(data);
        if size == 1 {
            return Ok(vec![mine]);
        }
        let lens = self.exchange_all(&[mine.len() as u64], "all_gather (lengths)")?;
        if let Some((from, len)) = lens.iter().enumerate().find(|(_, &l)| l > MAX_ELEMENTS) {
            return Err(self.out_of_step(WHAT, from, format!("a length of {len} values")));
        }
        let lens: Vec<usize> = lens.into_iter().map(|l| l as usize).collect();
        if lens.iter().all(|&l| l == lens[0]) {
            let n = lens[0];
            if n == 0 {
                return Ok((0..size).map(|r| if r == rank { mine.clone() } else { Arc::default() }).collect());
            }
            let send = self.upload(&mine, WHAT)?;
            let mut recv = self.alloc::<f32>(n * size, "the gathered vectors")?;
            {
                let (send_ptr, _read) = send.device_ptr(&self.stream);
                let (recv_ptr, _write) = recv.device_ptr_mut(&self.stream);
                self.run(WHAT, &[Op::AllGather { send: send_ptr, recv: recv_ptr, bytes: n * std::mem::size_of::<f32>() }])?;
            }
            let all = self.download(&recv, WHAT)?;
            return Ok(all.chunks(n).enumerate().map(|(r, part)| if r == rank { mine.clone() } else { Arc::new(part.to_vec()) }).collect());
        }
        let send = if mine.is_empty() { None } else { Some(self.upload(&mine, WHAT)?) };
        let mut received: Vec<Option<CudaSlice<f32>>> = Vec::with_capacity(size);
        for (r, &len) in lens.iter().enumerate() {
            received.push(if r == rank || len == 0 { None } else { Some(self.alloc::<f32>(len, &format!("rank {r}'s vector"))?) });
        }
        {
            let mut ops = Vec::with_capacity(size);
            let mut guards = Vec::with_capacity(size);
            if let Some(send) = &send {
                let (p, g) = send.device_ptr(&self.stream);
                guards.push(g);
                ops.push((rank, p, mine.len()));
            }
            for (r, buf) in received.iter_mut().enumerate() {
                if let Some(buf) = buf {
                    let len = buf.len();
                    let (p, g) = buf.device_ptr_mut(&self.stream);
                    guards.push(g);
                    ops.push((r, p, len));
                }
            }
            // Roots in rank order, the same on every rank.
            ops.sort_by_key(|&(root, _, _)| root);
            let ops: Vec<Op> = ops.into_iter().map(|(root, p, len)| Op::Broadcast { send: p, recv: p, bytes: len * std::mem::size_of::<f32>(), root }).collect();
            self.run(WHAT, &ops)?;
            drop(guards);
        }
        let mut out = Vec::with_capacity(size);
        for (r, buf) in received.iter().enumerate() {
            out.push(match buf {
                _ if r == rank => mine.clone(),
                Some(buf) => Arc::new(self.download(buf, WHAT)?),
                None => Arc::default(),
            });
        }
        Ok(out)
    }

    /// Device K/V blocks: announcements first ([present, K type, K len, V type, V len] per
    /// rank), then a group of broadcasts, each rank's K and V into new buffers on every
    /// other rank (this rank's own stay where they are: the item itself is returned).
    fn all_gather_handoff(&mut self, item: Handoff) -> Result<Option<Vec<Handoff>>> {
        const WHAT: &str = "all_gather_handoff";
        let Some(own) = item.downcast_ref::<Option<KvBlock<Cuda>>>() else {
            return Err(self.wrong_item(WHAT, "Option<(GpuBuf, GpuBuf)> (a host's passing block, or none)"));
        };
        self.ensure_open(WHAT)?;
        let (rank, size) = (self.shared.rank, self.shared.size);
        if size == 1 {
            return Ok(Some(vec![item]));
        }
        let words = self.exchange_all(&block_meta(own.as_ref()), "all_gather_handoff (block sizes)")?;
        let mut metas = Vec::with_capacity(size);
        for (r, w) in words.chunks(BLOCK_WORDS).enumerate() {
            metas.push(parse_block(w).map_err(|detail| self.out_of_step(WHAT, r, detail))?);
        }
        let mut received: Vec<Option<KvBlock<Cuda>>> = Vec::with_capacity(size);
        for (r, meta) in metas.iter().enumerate() {
            received.push(match meta {
                Some([k, v]) if r != rank => Some((self.alloc_buf(*k, &format!("rank {r}'s K"))?, self.alloc_buf(*v, &format!("rank {r}'s V"))?)),
                _ => None,
            });
        }
        {
            let mut group = Group::new(&self.stream);
            // Every rank issues the same broadcasts in the same order: by root, K then V.
            for (root, slot) in received.iter_mut().enumerate() {
                if root == rank {
                    if let Some((k, v)) = own {
                        group.broadcast(k, root);
                        group.broadcast(v, root);
                    }
                } else if let Some((k, v)) = slot {
                    group.broadcast_into(k, root);
                    group.broadcast_into(v, root);
                }
            }
            self.run(WHAT, &group.ops)?;
        }
        Ok(Some(received.into_iter().enumerate().map(|(r, block)| if r == rank { item.clone() } else { Arc::new(block) as Handoff }).collect()))
    }

    /// K/V blocks in the background (APB's passing blocks, ring steps): the receive buffers
    /// are made on the backend's stream, the transfer stream waits for them and for this host's block, and one group
    /// of sends (this block to each host in `to`) and receives (each host of `from`) goes
    /// on the transfer stream. No sizes are announced: every host's plan gives them, and the
    /// engine checks its own block against its plan before sending.
    fn start_block_exchange(&mut self, own: Handoff, to: &[usize], from: &[(usize, usize)]) -> Result<Option<Box<dyn InFlight>>> {
        const WHAT: &str = "K/V blocks";
        // A passing block (or none), or a ring step's held block.
        let block = match (own.downcast_ref::<Option<KvBlock<Cuda>>>(), own.downcast_ref::<KvBlock<Cuda>>()) {
            (Some(passing), _) => passing.as_ref(),
            (None, Some(held)) => Some(held),
            _ => return Err(self.wrong_item(WHAT, "(GpuBuf, GpuBuf) or an Option of it (a host's K/V block)")),
        };
        self.ensure_open(WHAT)?;
        let (rank, size) = (self.shared.rank, self.shared.size);
        let internal = |message: String| EngineError::new(code::INTERNAL, PATH, format!("rank {rank} of {size}: {WHAT}: {message}"));
        if let Some(peer) = to.iter().chain(from.iter().map(|(r, _)| r)).find(|&&r| r >= size || r == rank) {
            return Err(internal(format!("asked to exchange with rank {peer}")));
        }
        let sent = match block {
            Some((k, v)) if !to.is_empty() => {
                if !matches!((k, v), (GpuBuf::Bf16(_), GpuBuf::Bf16(_))) {
                    return Err(internal("a passing block is bf16 K and V on the GPU".into()));
                }
                Some((k, v))
            }
            None if !to.is_empty() => return Err(internal(format!("asked to send to {to:?} without a block"))),
            _ => None,
        };
        let mut received = Vec::with_capacity(from.len());
        for &(peer, len) in from {
            received.push((self.alloc_buf((Kind::Bf16, len), &format!("rank {peer}'s K"))?, self.alloc_buf((Kind::Bf16, len), &format!("rank {peer}'s V"))?));
        }
        self.bind(WHAT)?;
        let ready = self.stream.record_event(None).map_err(|e| self.error(format!("{WHAT}: marking the compute stream failed: {e:?}")))?;
        // SAFETY: both handles belong to this GPU's context, current on this thread; the
        // event is alive for the call (the wait takes the event's state when it is queued).
        unsafe { cu::cuStreamWaitEvent(self.transfer.raw, ready.cu_event(), 0) }.result().map_err(|e| self.error(format!("{WHAT}: ordering the transfer after compute failed: {e:?}")))?;
        {
            let mut group = Group::new(&self.stream);
            // Each pair of ranks matches in order: K, then V, both ways.
            if let Some((k, v)) = sent {
                for &peer in to {
                    group.send(k, peer);
                    group.send(v, peer);
                }
            }
            for ((k, v), &(peer, _)) in received.iter_mut().zip(from) {
                group.receive(k, peer);
                group.receive(v, peer);
            }
            // The event below must mark the stream after NCCL's kernels, so wait until they
            // are queued (non-blocking: NCCL may queue them in the background).
            let queued = if group.ops.is_empty() { Ok(()) } else { self.queue(WHAT, &group.ops, self.transfer.raw).and_then(|()| self.shared.wait_until(WHAT, || cu::CUresult::CUDA_SUCCESS)) };
            drop(group);
            if let Err(error) = queued {
                // The receive buffers are freed on the backend's stream: after whatever of the
                // group reached the transfer stream (an aborted communicator stops it).
                self.order_after_transfers();
                return Err(error);
            }
        }
        let done = self.shared.ctx.new_event(None).map_err(|e| self.error(format!("{WHAT}: making an event failed: {e:?}")))?;
        // SAFETY: the event and the stream belong to this GPU's context, current on this
        // thread (bound by `wait_until`).
        unsafe { cu::cuEventRecord(done.cu_event(), self.transfer.raw) }.result().map_err(|e| self.error(format!("{WHAT}: marking the transfer failed: {e:?}")))?;
        Ok(Some(Box::new(NcclInFlight {
            shared: self.shared.clone(),
            compute: self.stream_handle() as usize,
            done,
            _sent: own,
            received: received.into_iter().map(|kv| Arc::new(kv) as Handoff).collect(),
            ordered: false,
        })))
    }

    /// A ring step on device K/V: announces the block's sizes to the next rank (and learns
    /// the previous rank's), then sends K and V to the next rank and receives the previous
    /// rank's into new buffers, as one group.
    fn ring_pass_handoff(&mut self, item: Handoff) -> Result<Option<Handoff>> {
        const WHAT: &str = "ring_pass_handoff";
        let Some(block) = item.downcast_ref::<KvBlock<Cuda>>() else {
            return Err(self.wrong_item(WHAT, "(GpuBuf, GpuBuf) (a K/V block)"));
        };
        self.ensure_open(WHAT)?;
        let (rank, size) = (self.shared.rank, self.shared.size);
        if size == 1 {
            return Ok(Some(item));
        }
        let (next, prev) = ((rank + 1) % size, (rank + size - 1) % size);
        let words = self.exchange_ring(&block_meta(Some(block)), next, prev, "ring_pass_handoff (block sizes)")?;
        let [km, vm] = match parse_block(&words) {
            Ok(Some(m)) => m,
            Ok(None) => return Err(self.out_of_step(WHAT, prev, "no block".into())),
            Err(detail) => return Err(self.out_of_step(WHAT, prev, detail)),
        };
        let mut got_k = self.alloc_buf(km, &format!("rank {prev}'s K"))?;
        let mut got_v = self.alloc_buf(vm, &format!("rank {prev}'s V"))?;
        {
            let mut group = Group::new(&self.stream);
            // Sends to `next` and receives from `prev` match in order (K, then V) on each
            // pair of ranks.
            group.send(&block.0, next);
            group.send(&block.1, next);
            group.receive(&mut got_k, prev);
            group.receive(&mut got_v, prev);
            self.run(WHAT, &group.ops)?;
        }
        Ok(Some(Arc::new((got_k, got_v)) as Handoff))
    }

    fn compute_turn(&self) -> Option<MutexGuard<'_, ()>> {
        None
    }

    fn check_aborted(&self) -> Result<()> {
        if !self.shared.aborted.load(Ordering::SeqCst) {
            return Ok(());
        }
        let s = lock(&self.shared.state);
        Err(self.shared.stopped("this request", &s))
    }

    fn abort(&self, reason: &str) {
        self.shared.abort(reason);
    }

    fn collective_phase(&self) -> &'static str {
        "comm"
    }

    /// Device buffers to each rank (Ulysses): announcements first (every rank's part for
    /// every rank: how many buffers, each one's type and length), then one group of sends
    /// and receives, each pair of ranks exchanging their parts' buffers in order. This rank's
    /// own part stays where it is (the item itself is returned).
    fn all_to_all_handoff(&mut self, parts: Vec<Handoff>) -> Result<Option<Vec<Handoff>>> {
        const WHAT: &str = "all_to_all_handoff";
        let (rank, size) = (self.shared.rank, self.shared.size);
        if parts.len() != size {
            return Err(EngineError::new(code::INTERNAL, PATH, format!("{WHAT}: {} parts for {size} ranks", parts.len())));
        }
        let own = parts.iter().map(|p| p.downcast_ref::<Vec<GpuBuf>>().ok_or_else(|| self.wrong_item(WHAT, "Vec<GpuBuf> for each rank (a part's buffers)"))).collect::<Result<Vec<_>>>()?;
        self.ensure_open(WHAT)?;
        if size == 1 {
            return Ok(Some(parts));
        }
        let mut words = Vec::with_capacity(size * PART_WORDS);
        for part in &own {
            words.extend(part_meta(part).map_err(|detail| EngineError::new(code::INTERNAL, PATH, format!("{WHAT}: {detail}")))?);
        }
        let announced = self.exchange_all(&words, "all_to_all_handoff (part sizes)")?;
        // Each rank's announcement for this rank, in rank order: what it is about to send here.
        let mut received: Vec<Vec<GpuBuf>> = Vec::with_capacity(size);
        for from in 0..size {
            let at = (from * size + rank) * PART_WORDS;
            let metas = announced.get(at..at + PART_WORDS).ok_or_else(|| self.out_of_step(WHAT, from, "too few words".into()))?;
            let metas = parse_part(metas).map_err(|detail| self.out_of_step(WHAT, from, detail))?;
            let bufs = if from == rank { Vec::new() } else { metas.into_iter().enumerate().map(|(i, m)| self.alloc_buf(m, &format!("rank {from}'s buffer {i}"))).collect::<Result<Vec<_>>>()? };
            received.push(bufs);
        }
        {
            let mut group = Group::new(&self.stream);
            // Every pair of ranks matches in order: the sender's buffers for the receiver as
            // the receiver's buffers from the sender.
            for (peer, part) in own.iter().enumerate().filter(|(peer, _)| *peer != rank) {
                part.iter().for_each(|b| group.send(b, peer));
            }
            for (peer, bufs) in received.iter_mut().enumerate() {
                bufs.iter_mut().for_each(|b| group.receive(b, peer));
            }
            self.run(WHAT, &group.ops)?;
        }
        Ok(Some(received.into_iter().enumerate().map(|(r, bufs)| if r == rank { parts[rank].clone() } else { Arc::new(bufs) as Handoff }).collect()))
    }
}

/// The most buffers one all-to-all part carries (Ulysses sends q, k and v).
const PART_BUFS: usize = 4;
/// Words announcing a part: [buffers, then each one's type and length], unused slots zero.
const PART_WORDS: usize = 1 + 2 * PART_BUFS;

fn part_meta(part: &[GpuBuf]) -> std::result::Result<[u64; PART_WORDS], String> {
    if part.len() > PART_BUFS {
        return Err(format!("a part of {} buffers; at most {PART_BUFS}", part.len()));
    }
    let mut words = [0; PART_WORDS];
    words[0] = part.len() as u64;
    for (i, b) in part.iter().enumerate() {
        words[1 + 2 * i..3 + 2 * i].copy_from_slice(&buf_meta(b));
    }
    Ok(words)
}

/// A peer's announced part, checked: each buffer's type and length.
fn parse_part(words: &[u64]) -> std::result::Result<Vec<BufMeta>, String> {
    let count = words.first().map_or(u64::MAX, |&n| n) as usize;
    if words.len() != PART_WORDS || count > PART_BUFS || words[1 + 2 * count..].iter().any(|&w| w != 0) {
        return Err(format!("a malformed part announcement {words:?}"));
    }
    words[1..1 + 2 * count].chunks_exact(2).map(|w| parse_buf(w[0], w[1])).collect()
}

impl Drop for NcclComm {
    /// Every collective waited for its work, so nothing of this rank's is in flight:
    /// finalizes (NCCL flushes and quiesces) and destroys the communicator, or aborts it
    /// where finalizing fails or takes longer than FINALIZE_TIMEOUT (a peer gone).
    fn drop(&mut self) {
        let sh = &self.shared;
        let _ = sh.ctx.bind_to_thread();
        let started = {
            let s = lock(&sh.state);
            let Some(comm) = s.comm.as_ref().map(|c| c.0) else { return };
            // SAFETY: `comm` is live under the lock; finalizing a non-blocking communicator
            // returns at once and completes in the background.
            unsafe { (sh.lib.comm_finalize)(comm) }
        };
        if started == NCCL_SUCCESS || started == NCCL_IN_PROGRESS {
            let deadline = Instant::now() + FINALIZE_TIMEOUT;
            let pause = Pause::new(Duration::from_millis(1));
            loop {
                let mut s = lock(&sh.state);
                let Some(comm) = s.comm.as_ref().map(|c| c.0) else { return };
                let mut state: c_int = NCCL_SUCCESS;
                // SAFETY: `comm` is live under the lock; `state` is a valid out-int.
                let status = unsafe { (sh.lib.comm_get_async_error)(comm, &mut state) };
                if status != NCCL_SUCCESS || (state != NCCL_SUCCESS && state != NCCL_IN_PROGRESS) {
                    break;
                }
                if state == NCCL_SUCCESS {
                    s.comm = None;
                    // SAFETY: `comm` is finalized and taken out of the state, so nothing
                    // else uses it; destroying frees what finalizing left.
                    unsafe { (sh.lib.comm_destroy)(comm) };
                    return;
                }
                drop(s);
                if Instant::now() >= deadline {
                    break;
                }
                pause.wait();
            }
        }
        let mut s = lock(&sh.state);
        if let Some(comm) = s.comm.take() {
            // SAFETY: `comm` is live and taken out of the state under the lock; aborting
            // frees it without waiting for peers.
            unsafe { (sh.lib.comm_abort)(comm.0) };
        }
    }
}

// The addon moves a communicator into the thread that runs its host and hands the aborter to
// any other thread.
const _: fn() = || {
    fn send<T: Send>() {}
    fn sync<T: Sync>() {}
    send::<NcclComm>();
    send::<NcclAbort>();
    sync::<NcclAbort>();
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_ids_round_trip_through_hex() {
        let mut id = sys::ncclUniqueId { internal: [0; 128] };
        for (i, b) in id.internal.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37) as c_char;
        }
        let hex = id_to_hex(&id);
        assert_eq!(hex.len(), 256);
        assert_eq!(hex, hex.to_lowercase());
        assert_eq!(id_from_hex(&hex).unwrap().internal, id.internal);
        assert_eq!(id_from_hex(&hex.to_uppercase()).unwrap().internal, id.internal);
    }

    #[test]
    fn malformed_unique_ids_are_refused() {
        for bad in ["", "00", &"0".repeat(255), &"0".repeat(258), &format!("{}zz", "0".repeat(254)), &format!("{}é", "0".repeat(254))] {
            let e = id_from_hex(bad).unwrap_err();
            assert_eq!(e.code, code::INVALID_INPUT, "{bad:?}");
            assert!(e.message.contains("256 hex digits"), "{}", e.message);
        }
    }

    #[test]
    fn block_announcements_are_checked() {
        assert_eq!(parse_block(&[0, 0, 0, 0, 0]), Ok(None));
        assert_eq!(parse_block(&[1, 1, 4096, 1, 4096]), Ok(Some([(Kind::Bf16, 4096), (Kind::Bf16, 4096)])));
        assert_eq!(parse_block(&[1, 2, 0, 1, 8]), Ok(Some([(Kind::F32, 0), (Kind::Bf16, 8)])));
        assert!(parse_block(&[1, 3, 8, 1, 8]).unwrap_err().contains("unknown buffer type 3"));
        assert!(parse_block(&[1, 1, MAX_ELEMENTS + 1, 1, 8]).is_err());
        assert!(parse_block(&[2, 1, 8, 1, 8]).is_err());
        assert!(parse_block(&[0, 1, 8, 1, 8]).is_err());
        assert!(parse_block(&[1, 1, 8]).is_err());
    }

    #[test]
    fn versions_unpack() {
        assert_eq!(version_string(21400), "2.14.0");
        assert_eq!(version_string(22805), "2.28.5");
        assert_eq!(version_string(2708), "2.7.8");
    }

    #[test]
    fn the_config_is_non_blocking_and_otherwise_nccls_defaults() {
        let c = config();
        assert_eq!(c.size, std::mem::size_of::<sys::ncclConfig_t>());
        assert_eq!((c.magic, c.version, c.blocking), (0xcafebeef, 22800, 0));
        assert_eq!((c.cgaClusterSize, c.minCTAs, c.maxCTAs, c.splitShare, c.nvlinkCentricSched), (c_int::MIN, c_int::MIN, c_int::MIN, c_int::MIN, c_int::MIN));
        assert!(c.netName.is_null() && c.commName.is_null());
    }

    #[test]
    fn a_machine_without_nccl_gets_a_clear_error() {
        match unique_id() {
            Ok(id) => assert_eq!(id.len(), 256),
            Err(e) => {
                assert_eq!(e.code, NCCL_UNAVAILABLE, "{e}");
                assert!(e.message.contains("libnccl.so.2") && e.message.contains("LD_LIBRARY_PATH"), "{}", e.message);
            }
        }
    }

    #[test]
    fn part_announcements_are_checked() {
        let words = |w: &[u64]| w.iter().copied().chain(std::iter::repeat(0)).take(PART_WORDS).collect::<Vec<_>>();
        assert_eq!(parse_part(&words(&[0])).unwrap(), vec![]);
        assert_eq!(parse_part(&words(&[2, 1, 96, 2, 0])).unwrap(), vec![(Kind::Bf16, 96), (Kind::F32, 0)]);
        assert!(parse_part(&words(&[5])).is_err(), "more buffers than a part carries");
        assert!(parse_part(&words(&[1, 1, 8, 1, 8])).is_err(), "words past the announced buffers");
        assert!(parse_part(&words(&[1, 3, 8])).is_err(), "unknown type");
        assert!(parse_part(&words(&[1, 1, MAX_ELEMENTS + 1])).is_err());
        assert!(parse_part(&[1, 1, 8]).is_err(), "too short");
    }
}
