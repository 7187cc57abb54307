//! CPU kernels: f32 with f32 accumulation, all cores via scoped threads. They are also the
//! reference every GPU kernel is checked against.

pub mod attention;
pub mod elementwise;
pub mod linear;
pub mod par;
pub mod select;
pub mod simd;
pub mod backend;
