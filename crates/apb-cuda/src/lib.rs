//! The CUDA kernels, embedded as fatbins and launched through the driver API. The driver is
//! loaded at run time (cudarc's dynamic loading), so this builds and runs where there is no
//! GPU, and says so instead of failing.
//!
//! Each kernel is two files: its source `cuda/x.cu` and its launcher here, `x.rs`, which
//! embeds the fatbin, finds the entry points, owns the launch shape, checks shapes and
//! launches through [`gpu::Gpu`]'s one launch function. Structs passed to a kernel by value
//! are mirrored `#[repr(C)]` with [`c_layout!`] beside the source's `static_assert`s.
//!
//! - [`gpu`]: opening a GPU, loading the kernels, the launch;
//! - [`attention`]: APB attention: the shapes, the kernel choice and the portable kernel;
//!   [`attention_sm90`]: the Hopper TMA + wgmma kernel; [`attention_decode`]: a few query
//!   rows over many keys (decode), query heads packed per KV head;
//! - [`merge`]: merging partial attention by LSE;
//! - [`ops`]: the decoder's element-wise, gather and scoring kernels;
//! - [`blas`] (cuBLASLt GEMMs), [`nccl`] (the data plane between GPUs), [`backend`] (the
//!   engine's `Backend` on all of these), [`doctor`] (what the machine offers).

/// Kernel arguments as cuLaunchKernel takes them: the address of each (mutable) local.
macro_rules! args {
    ($($x:expr),* $(,)?) => { [$(&mut $x as *mut _ as *mut std::ffi::c_void),*] };
}

/// Ties a `#[repr(C)]` mirror to the C struct a kernel takes: asserts at compile time that
/// its size, alignment and field offsets are the numbers given here, which are the numbers
/// the C source's `static_assert` states (the `layout` test reads them from the source, so
/// neither side can change alone).
macro_rules! c_layout {
    ($t:ident as $c:literal in $file:literal: size $size:literal, align $align:literal, $($f:ident @ $off:literal),+ $(,)?) => {
        const _: () = assert!(
            size_of::<$t>() == $size && align_of::<$t>() == $align $(&& std::mem::offset_of!($t, $f) == $off)+,
            concat!(stringify!($t), " is not laid out as ", $c, " in cuda/", $file)
        );
        #[cfg(test)]
        impl $t {
            pub(crate) const C_LAYOUT: crate::layout::CLayout =
                crate::layout::CLayout { c_name: $c, file: $file, size: $size, align: $align, fields: &[$((stringify!($f), $off)),+] };
        }
    };
}

pub mod attention;
pub mod attention_decode;
pub mod attention_sm90;
pub mod backend;
pub mod blas;
pub mod doctor;
pub mod gpu;
#[cfg(test)]
mod layout;
pub mod merge;
pub mod nccl;
pub mod ops;

pub use attention::{AttentionKernel, GpuSegment};
pub use backend::{Cuda, GpuBuf};
pub use gpu::{kernels_built, Gpu, CUDA_UNAVAILABLE};
