//! Opening a GPU and loading the embedded kernels.

use std::ffi::{c_void, CString};
use std::sync::Arc;

use apb_engine::error::{code, EngineError, Result};
use cudarc::driver::{result, sys, CudaContext, CudaSlice, CudaStream, DevicePtr, DeviceRepr, ValidAsZeroBits};

/// Re-exported for callers that name it through this crate; the engine's `code` module holds it.
pub use apb_engine::error::code::CUDA_UNAVAILABLE;

pub(crate) fn unavailable(message: String) -> EngineError {
    EngineError::new(CUDA_UNAVAILABLE, "backend", message)
}

pub(crate) fn driver(what: &str) -> impl Fn(result::DriverError) -> EngineError + '_ {
    move |e| EngineError::new(code::CUDA, what, format!("{what} failed: {e:?}"))
}

/// Whether this build carries the kernels.
pub fn kernels_built() -> bool {
    cfg!(apb_kernels) && [crate::attention::FATBIN, crate::attention_sm90::FATBIN, crate::attention_decode::FATBIN, crate::merge::FATBIN, crate::ops::FATBIN].iter().all(|f| !f.is_empty())
}

/// The kernel entry points, looked up once per GPU by each kernel's launcher module.
pub(crate) struct Kernels {
    pub attention: crate::attention::ByHeadDim,
    /// The Hopper kernel, on compute capability 9.0 only.
    pub attention_sm90: Option<crate::attention::ByHeadDim>,
    pub attention_decode: crate::attention::ByHeadDim,
    pub merge: crate::merge::Functions,
    pub ops: crate::ops::Functions,
}

/// The largest grid the driver launches: x up to 2^31 - 1 blocks, y and z up to 65,535.
const MAX_GRID: (usize, usize, usize) = ((1 << 31) - 1, 65_535, 65_535);

/// How one kernel is launched: blocks in x, y and z, threads per block, dynamic shared memory.
pub(crate) struct LaunchShape {
    /// Blocks along x, y and z.
    pub grid: (usize, usize, usize),
    pub threads: u32,
    pub smem_bytes: usize,
}

pub struct Gpu {
    pub name: String,
    pub compute_capability: (i32, i32),
    /// Streaming multiprocessors: how many blocks of a one-block-per-SM kernel run at once.
    pub sm_count: usize,
    pub(crate) ctx: Arc<CudaContext>,
    pub(crate) stream: Arc<CudaStream>,
    pub(crate) kernels: Kernels,
}

// SAFETY: CUfunction handles are plain driver handles valid in `ctx`, which lives as long as
// this value; every use binds `ctx` to the calling thread first.
unsafe impl Send for Gpu {}
unsafe impl Sync for Gpu {}

/// A 64-bit attribute of a memory pool (its reserved and used bytes, their high-water marks).
fn pool_attribute(pool: sys::CUmemoryPool, attr: sys::CUmemPool_attribute) -> Result<u64> {
    let mut v = 0u64;
    // SAFETY: the attributes read through here are 64-bit values written to `v`; `pool` is a
    // pool of the current context.
    unsafe { sys::cuMemPoolGetAttribute(pool, attr, &mut v as *mut u64 as *mut c_void) }.result().map_err(driver("reading the memory pool"))?;
    Ok(v)
}

/// Sets a 64-bit attribute of a memory pool (its release threshold, its high-water mark).
fn set_pool_attribute(pool: sys::CUmemoryPool, attr: sys::CUmemPool_attribute, mut value: u64) -> Result<()> {
    // SAFETY: the attributes set through here are 64-bit values read from `value`; `pool` is a
    // pool of the current context.
    unsafe { sys::cuMemPoolSetAttribute(pool, attr, &mut value as *mut u64 as *mut c_void) }.result().map_err(driver("setting a memory pool attribute"))
}

/// Loads a fatbin into the current context (once per image: on GPUs that run its PTX, each
/// load compiles it again).
pub(crate) fn module(image: &'static [u8]) -> Result<sys::CUmodule> {
    // SAFETY: the image is a complete fatbin produced by nvcc, kept alive for the whole
    // program (a static); the module stays loaded as long as the context.
    unsafe { result::module::load_data(image.as_ptr() as *const c_void) }.map_err(driver("loading the kernels"))
}

/// Finds `name` in a loaded module, raising its dynamic shared-memory limit to `smem`.
pub(crate) fn function(module: sys::CUmodule, name: &str, smem: usize) -> Result<sys::CUfunction> {
    // SAFETY: `module` was loaded by `module()` in this context and `name` is one of its
    // extern "C" entries.
    let f = unsafe { result::module::get_function(module, CString::new(name).expect("no NUL")) }.map_err(driver("finding a kernel"))?;
    if smem > 48 * 1024 {
        // SAFETY: `f` is a valid function of the current context.
        unsafe { result::function::set_function_attribute(f, sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, smem as i32) }
            .map_err(driver("raising the shared-memory limit"))?;
    }
    Ok(f)
}

impl Gpu {
    /// Opens GPU `ordinal` and loads the kernels, or says why it cannot.
    pub fn open(ordinal: usize) -> Result<Gpu> {
        if !kernels_built() {
            return Err(unavailable("this build has no CUDA kernels (nvcc was not found when it was built)".into()));
        }
        // cudarc panics on a missing driver or one older than the CUDA it was built for, so
        // the driver is probed on its own first (as `apb doctor` does).
        let (driver_info, _) = crate::doctor::probe_driver();
        if !driver_info.found {
            return Err(unavailable("no CUDA driver found (libcuda.so.1); this machine has no NVIDIA GPU driver".into()));
        }
        if !driver_info.cuda_supported {
            let problem = driver_info.problem.unwrap_or_else(|| "the NVIDIA driver is too old".into());
            let fix = driver_info.fix.map(|f| format!("; {f}")).unwrap_or_default();
            return Err(unavailable(format!("{problem}{fix}")));
        }
        // SAFETY: only probes whether libcuda can be loaded; cudarc would panic otherwise.
        if !unsafe { sys::is_culib_present() } {
            return Err(unavailable("no CUDA driver found (libcuda.so.1); this machine has no NVIDIA GPU driver".into()));
        }
        let ctx = CudaContext::new(ordinal).map_err(driver("opening the GPU"))?;
        // cudarc's event tracking gives every buffer two events, records one at each launch
        // that reads it and waits on both before freeing it: about ten driver calls per op,
        // which leave the GPU idle between the small kernels of the query pass and decode.
        // SAFETY: the tracking orders buffers across streams made with `new_stream`, and none
        // is: every op runs on the one default stream (stream order is all it needs), and the
        // NCCL transfer stream (nccl.rs) orders itself with its own events and keeps its
        // buffers alive until they have passed. Called before any buffer exists.
        unsafe { ctx.disable_event_tracking() };
        let name = ctx.name().unwrap_or_else(|_| "unknown GPU".into());
        let compute_capability = ctx.compute_capability().map_err(driver("reading the compute capability"))?;
        if compute_capability.0 < 8 {
            return Err(unavailable(format!("{name} has compute capability {}.{}; apb's kernels need 8.0 or newer", compute_capability.0, compute_capability.1)));
        }
        let sm_count = ctx.attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT).map_err(driver("reading the SM count"))?.max(1) as usize;
        let stream = ctx.default_stream();
        ctx.bind_to_thread().map_err(driver("binding the GPU"))?;
        let kernels = Kernels {
            attention: crate::attention::load()?,
            attention_sm90: if compute_capability == (9, 0) { Some(crate::attention_sm90::load()?) } else { None },
            attention_decode: crate::attention_decode::load()?,
            merge: crate::merge::Functions::load()?,
            ops: crate::ops::Functions::load()?,
        };
        let gpu = Gpu { name, compute_capability, sm_count, ctx, stream, kernels };
        gpu.keep_freed_memory()?;
        Ok(gpu)
    }

    /// Launches `f` on this GPU's stream, after checking the grid against the driver's limits
    /// (an empty grid launches nothing). Every kernel's launcher comes through here.
    ///
    /// # Safety
    /// `params` must be the kernel's parameters in the order and types its .cu source
    /// declares, each pointing at a live local, and every buffer they address must have been
    /// checked by the caller to hold what the kernel reads and writes for this shape, and
    /// outlive the launch (stream order: the caller holds the buffers' guards).
    pub(crate) unsafe fn launch(&self, what: &str, f: sys::CUfunction, shape: LaunchShape, params: &mut [*mut c_void]) -> Result<()> {
        let (x, y, z) = shape.grid;
        if x == 0 || y == 0 || z == 0 {
            return Ok(());
        }
        if x > MAX_GRID.0 || y > MAX_GRID.1 || z > MAX_GRID.2 {
            return Err(EngineError::new(code::INTERNAL, what, format!("{what}: a grid of {x} x {y} x {z} blocks is over the driver's limit of {} x {} x {}; split the work", MAX_GRID.0, MAX_GRID.1, MAX_GRID.2)));
        }
        // Engine hosts are threads; each must have the context current before a raw launch.
        self.ctx.bind_to_thread().map_err(driver("binding the GPU"))?;
        // SAFETY: the caller guarantees the parameters and buffers (this function's contract);
        // the grid is within the driver's limits, and `f` was loaded in this context.
        unsafe { result::launch_kernel(f, (x as u32, y as u32, z as u32), (shape.threads, 1, 1), shape.smem_bytes as u32, self.stream.cu_stream(), params) }
            .map_err(|e| EngineError::new(code::CUDA, what, format!("launching {what} failed: {e:?}")))
    }

    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    pub fn upload<T: DeviceRepr>(&self, data: &[T]) -> Result<CudaSlice<T>> {
        self.stream.memcpy_stod(data).map_err(driver("copying to the GPU"))
    }

    pub fn download<T: DeviceRepr + Default + Clone>(&self, data: &CudaSlice<T>) -> Result<Vec<T>> {
        self.stream.memcpy_dtov(data).map_err(driver("copying from the GPU"))
    }

    pub fn zeros<T: DeviceRepr + ValidAsZeroBits>(&self, len: usize) -> Result<CudaSlice<T>> {
        self.stream.alloc_zeros::<T>(len).map_err(driver("allocating GPU memory"))
    }

    /// `len` copies of `value`, written on the stream by the driver's 32-bit memset (no
    /// kernel, nothing uploaded from the host).
    pub fn filled_f32(&self, len: usize, value: f32) -> Result<CudaSlice<f32>> {
        // SAFETY: every value is written by the memset below before any use (stream order).
        let out = unsafe { self.stream.alloc::<f32>(len) }.map_err(driver("allocating GPU memory"))?;
        if len > 0 {
            let (ptr, _guard) = out.device_ptr(&self.stream);
            // SAFETY: `ptr` addresses `len` 4-byte values owned by `out`, alive past the memset
            // in stream order; the stream belongs to this context.
            unsafe { sys::cuMemsetD32Async(ptr, value.to_bits(), len, self.stream.cu_stream()) }.result().map_err(driver("filling GPU memory"))?;
        }
        Ok(out)
    }

    /// Free and total device memory, in bytes.
    pub fn memory(&self) -> Result<(usize, usize)> {
        self.ctx.bind_to_thread().map_err(driver("binding the GPU"))?;
        result::mem_get_info().map_err(driver("reading free memory"))
    }

    /// The device's default memory pool, where every buffer is allocated (stream-ordered).
    fn pool(&self) -> Result<sys::CUmemoryPool> {
        self.ctx.bind_to_thread().map_err(driver("binding the GPU"))?;
        let mut pool = std::ptr::null_mut();
        // SAFETY: `pool` is a valid out-pointer and the device handle belongs to this context.
        unsafe { sys::cuDeviceGetDefaultMemPool(&mut pool, self.ctx.cu_device()) }.result().map_err(driver("finding the memory pool"))?;
        Ok(pool)
    }

    /// Keeps freed memory in the pool across synchronizations. By default the pool hands all
    /// of it back to the device at every synchronize, and the next layer's buffers (GBs at long
    /// prompts: a 128K-row FFN's gate and up alone are 7.5 GB) must be mapped again. The
    /// memory is given back by `trim_pool` when a model is released.
    fn keep_freed_memory(&self) -> Result<()> {
        let pool = self.pool()?;
        set_pool_attribute(pool, sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD, u64::MAX)
    }

    /// Gives the pool's unused memory back to the device (after a model is released).
    pub fn trim_pool(&self) -> Result<()> {
        let pool = self.pool()?;
        self.synchronize()?;
        // SAFETY: `pool` belongs to this context; trimming only releases memory no
        // allocation holds.
        unsafe { sys::cuMemPoolTrimTo(pool, 0) }.result().map_err(driver("trimming the memory pool"))
    }

    /// Bytes this process can still allocate: the device's free memory plus what the pool
    /// holds unused (`keep_freed_memory` keeps it there for the next buffers, so the device's
    /// own figure alone would count a finished request's memory as taken).
    pub fn available_bytes(&self) -> Result<u64> {
        let (free, _) = self.memory()?;
        let pool = self.pool()?;
        let read = |attr| pool_attribute(pool, attr);
        let reserved = read(sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT)?;
        let used = read(sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_CURRENT)?;
        Ok(free as u64 + reserved.saturating_sub(used))
    }

    /// Bytes of the default memory pool: (in use now, most in use since the last reset).
    /// `reset` starts a new high-water mark.
    pub fn pool_usage(&self, reset: bool) -> Result<(u64, u64)> {
        let pool = self.pool()?;
        let read = |attr| pool_attribute(pool, attr);
        let now = read(sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_CURRENT)?;
        let high = read(sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH)?;
        if reset {
            set_pool_attribute(pool, sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH, 0)?;
        }
        Ok((now, high))
    }

    pub fn synchronize(&self) -> Result<()> {
        self.stream.synchronize().map_err(driver("waiting for the GPU"))
    }

    /// Milliseconds `f` takes on the GPU, between two events on this GPU's stream.
    pub fn time_ms(&self, f: impl FnOnce() -> Result<()>) -> Result<f64> {
        let flags = Some(sys::CUevent_flags::CU_EVENT_DEFAULT);
        let start = self.stream.record_event(flags).map_err(driver("recording an event"))?;
        f()?;
        let end = self.stream.record_event(flags).map_err(driver("recording an event"))?;
        end.synchronize().map_err(driver("waiting for an event"))?;
        Ok(start.elapsed_ms(&end).map_err(driver("reading an event"))? as f64)
    }
}
