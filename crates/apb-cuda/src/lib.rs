//! The CUDA kernels, embedded as fatbins and launched through the driver API. The driver is
//! loaded at run time (cudarc's dynamic loading), so this builds and runs where there is no
//! GPU, and says so instead of failing.
//!
//! - [`gpu`]: opening a GPU and loading the kernels;
//! - [`attention`]: APB attention (the Hopper TMA+wgmma kernel where it applies, else the
//!   portable mma.sync one) and the LSE merge;
//! - [`check`]: the kernels against apb-engine's CPU reference on fresh inputs, and timing.
//! - [`status`]: the C launchers' status codes (cuda/status.h) and the errors they become.

/// Kernel arguments as cuLaunchKernel takes them: the address of each (mutable) local.
macro_rules! args {
    ($($x:expr),* $(,)?) => { [$(&mut $x as *mut _ as *mut std::ffi::c_void),*] };
}

pub mod attention;
pub mod backend;
pub mod blas;
pub mod check;
pub mod doctor;
pub mod gpu;
pub mod nccl;
pub mod ops;
pub mod status;

pub use attention::{AttentionKernel, GpuSegment};
pub use backend::{Cuda, GpuBuf};
pub use check::{check_attention, check_merge, time_attention, AttentionCheck, AttentionTiming, MergeCheck};
pub use gpu::{kernels_built, Gpu, CUDA_UNAVAILABLE};
