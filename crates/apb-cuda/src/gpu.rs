//! Opening a GPU and loading the embedded kernels.

use std::ffi::{c_void, CString};
use std::sync::Arc;

use apb_engine::error::{code, EngineError, Result};
use cudarc::driver::{result, sys, CudaContext, CudaSlice, CudaStream, DeviceRepr, ValidAsZeroBits};

static ATTENTION_FATBIN: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/attention.fatbin"));
static ATTENTION_SM90_FATBIN: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/attention_sm90.fatbin"));
static MERGE_FATBIN: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/merge.fatbin"));

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
    cfg!(apb_kernels) && !ATTENTION_FATBIN.is_empty() && !ATTENTION_SM90_FATBIN.is_empty() && !MERGE_FATBIN.is_empty() && crate::ops::ops_built()
}

/// The kernel entry points, looked up once per GPU.
pub(crate) struct Kernels {
    /// The portable attention kernels for head_dim 64 and 128.
    pub attention: [sys::CUfunction; 2],
    /// The Hopper kernel (head_dim 128), on compute capability 9.0 only.
    pub attention_sm90: Option<sys::CUfunction>,
    pub merge: sys::CUfunction,
    pub ops: crate::ops::OpsKernels,
}

pub struct Gpu {
    pub name: String,
    pub compute_capability: (i32, i32),
    pub(crate) ctx: Arc<CudaContext>,
    pub(crate) stream: Arc<CudaStream>,
    pub(crate) kernels: Kernels,
}

// SAFETY: CUfunction handles are plain driver handles valid in `ctx`, which lives as long as
// this value; every use binds `ctx` to the calling thread first.
unsafe impl Send for Gpu {}
unsafe impl Sync for Gpu {}

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
        let name = ctx.name().unwrap_or_else(|_| "unknown GPU".into());
        let compute_capability = ctx.compute_capability().map_err(driver("reading the compute capability"))?;
        if compute_capability.0 < 8 {
            return Err(unavailable(format!("{name} has compute capability {}.{}; apb's kernels need 8.0 or newer", compute_capability.0, compute_capability.1)));
        }
        let stream = ctx.default_stream();
        ctx.bind_to_thread().map_err(driver("binding the GPU"))?;
        let portable_smem = |d: usize| crate::attention::PORTABLE_SMEM_ROWS * (d + crate::attention::PORTABLE_PAD) * 2;
        let attention = module(ATTENTION_FATBIN)?;
        let kernels = Kernels {
            attention: [
                function(attention, "apb_attention_d64", portable_smem(64))?,
                function(attention, "apb_attention_d128", portable_smem(128))?,
            ],
            attention_sm90: if compute_capability == (9, 0) {
                Some(function(module(ATTENTION_SM90_FATBIN)?, "apb_attention_sm90_d128", crate::attention::SM90_SMEM_BYTES)?)
            } else {
                None
            },
            merge: function(module(MERGE_FATBIN)?, "apb_merge_bf16_kernel", 0)?,
            ops: crate::ops::OpsKernels::load()?,
        };
        Ok(Gpu { name, compute_capability, ctx, stream, kernels })
    }

    pub(crate) fn ops(&self) -> &crate::ops::OpsKernels {
        &self.kernels.ops
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

    /// Free and total device memory, in bytes.
    pub fn memory(&self) -> Result<(usize, usize)> {
        self.ctx.bind_to_thread().map_err(driver("binding the GPU"))?;
        result::mem_get_info().map_err(driver("reading free memory"))
    }

    /// Bytes of the default memory pool (where every buffer is allocated, stream-ordered):
    /// (in use now, most in use since the last reset). `reset` starts a new high-water mark.
    pub fn pool_usage(&self, reset: bool) -> Result<(u64, u64)> {
        self.ctx.bind_to_thread().map_err(driver("binding the GPU"))?;
        let mut pool = std::ptr::null_mut();
        // SAFETY: `pool` is a valid out-pointer and the device handle belongs to this context.
        unsafe { sys::cuDeviceGetDefaultMemPool(&mut pool, self.ctx.cu_device()) }.result().map_err(driver("finding the memory pool"))?;
        let read = |attr| -> Result<u64> {
            let mut v = 0u64;
            // SAFETY: both attributes are 64-bit values written to `v`.
            unsafe { sys::cuMemPoolGetAttribute(pool, attr, &mut v as *mut u64 as *mut c_void) }.result().map_err(driver("reading the memory pool"))?;
            Ok(v)
        };
        let now = read(sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_CURRENT)?;
        let high = read(sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH)?;
        if reset {
            let mut zero = 0u64;
            // SAFETY: the high-water attribute is reset by writing a 64-bit zero.
            unsafe { sys::cuMemPoolSetAttribute(pool, sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH, &mut zero as *mut u64 as *mut c_void) }
                .result()
                .map_err(driver("resetting the memory pool's high-water mark"))?;
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
