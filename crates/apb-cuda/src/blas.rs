//! Linear layers through cuBLAS (loaded at run time): bf16 operands, fp32 accumulation.

use std::ffi::{c_int, c_void};

use apb_engine::error::{code, EngineError, Result};
use cudarc::cublas::{result as blas, sys};
use cudarc::driver::{CudaSlice, CudaStream, DevicePtr, DevicePtrMut};

use crate::gpu::unavailable;

pub struct Blas {
    handle: sys::cublasHandle_t,
}

// SAFETY: the handle is only used on the stream it was bound to, and calls on it are
// serialised by the engine (one host computes at a time on a GPU).
unsafe impl Send for Blas {}
unsafe impl Sync for Blas {}

fn blas_error(what: &str) -> impl Fn(blas::CublasError) -> EngineError + '_ {
    move |e| EngineError::new(code::CUDA, "cublas", format!("cuBLAS {what} failed: {e:?}"))
}

/// The element type of a GEMM's output: bf16 activations, or fp32 (logits).
#[derive(Clone, Copy)]
pub enum OutType {
    Bf16,
    F32,
}

impl Blas {
    /// A handle bound to `stream`, or CUDA_UNAVAILABLE naming the missing library.
    pub fn new(stream: &CudaStream) -> Result<Blas> {
        // SAFETY: only probes whether libcublas can be loaded; cudarc would panic otherwise.
        if !unsafe { sys::is_culib_present() } {
            return Err(unavailable(
                "cuBLAS not found (libcublas.so.13 or libcublas.so): install CUDA's cuBLAS, or put the directory holding it (e.g. /usr/local/cuda/lib64) on LD_LIBRARY_PATH; `apb doctor` shows where apb looks".into(),
            ));
        }
        let handle = blas::create_handle().map_err(blas_error("creating a handle"))?;
        // SAFETY: `handle` was just created; the stream outlives it (both belong to the Gpu).
        unsafe { blas::set_stream(handle, stream.cu_stream() as sys::cudaStream_t) }.map_err(blas_error("binding the stream"))?;
        Ok(Blas { handle })
    }

    /// y[rows][outp] = x[rows][inp] W^T, with W [outp][inp] (the checkpoint layout), all
    /// row-major bf16; y bf16 or fp32. Column-major cuBLAS sees this as y^T = W x^T.
    #[allow(clippy::too_many_arguments)]
    pub fn linear<Y>(&self, stream: &CudaStream, x: &CudaSlice<u16>, w: &CudaSlice<u16>, y: &mut CudaSlice<Y>, out: OutType, rows: usize, inp: usize, outp: usize) -> Result<()> {
        if x.len() != rows * inp || w.len() != outp * inp || y.len() != rows * outp {
            return Err(EngineError::new(code::INTERNAL, "linear", format!("linear: x {} / w {} / y {} values for [{rows}][{inp}] x [{outp}][{inp}]^T", x.len(), w.len(), y.len())));
        }
        if rows == 0 {
            return Ok(());
        }
        let too_big = |n: usize| n > c_int::MAX as usize;
        if too_big(rows) || too_big(inp) || too_big(outp) {
            return Err(EngineError::invalid("rows", format!("a GEMM dimension exceeds 2^31 ({rows} x {inp} x {outp})")));
        }
        let (alpha, beta) = (1.0f32, 0.0f32);
        let (xp, _xg) = x.device_ptr(stream);
        let (wp, _wg) = w.device_ptr(stream);
        let (yp, _yg) = y.device_ptr_mut(stream);
        let y_type = match out {
            OutType::Bf16 => sys::cudaDataType::CUDA_R_16BF,
            OutType::F32 => sys::cudaDataType::CUDA_R_32F,
        };
        // SAFETY: the three buffers hold exactly the sizes checked above and live through the
        // call (the guards); alpha and beta are host f32 as COMPUTE_32F expects; the handle is
        // bound to `stream`, on which the buffers were made.
        unsafe {
            blas::gemm_ex(
                self.handle,
                sys::cublasOperation_t::CUBLAS_OP_T,
                sys::cublasOperation_t::CUBLAS_OP_N,
                outp as c_int,
                rows as c_int,
                inp as c_int,
                &alpha as *const f32 as *const c_void,
                wp as *const c_void,
                sys::cudaDataType::CUDA_R_16BF,
                inp as c_int,
                xp as *const c_void,
                sys::cudaDataType::CUDA_R_16BF,
                inp as c_int,
                &beta as *const f32 as *const c_void,
                yp as *mut c_void,
                y_type,
                outp as c_int,
                sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
                sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )
        }
        .map_err(blas_error("GEMM"))
    }
}

impl Drop for Blas {
    fn drop(&mut self) {
        // SAFETY: the handle was created by `new` and is destroyed once, here.
        let _ = unsafe { blas::destroy_handle(self.handle) };
    }
}
