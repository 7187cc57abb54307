//! `doctor()`: apb-cuda's probe of the machine (driver, GPUs, cuBLAS, cuBLASLt, NCCL) and the
//! backends of this build, as one plain object for `apb doctor`.

use apb_cuda::doctor::{self, DriverInfo, GpuInfo, LibraryInfo, Search};
use napi::bindgen_prelude::*;
use napi_derive::napi;

#[napi(object)]
pub struct DoctorGpu {
    pub index: u32,
    pub name: String,
    /// "9.0".
    pub compute_capability: String,
    pub total_memory_bytes: f64,
    pub multiprocessors: u32,
    /// Which of apb's attention kernels runs there: "sm90" (Hopper, compute capability 9.0),
    /// "portable" (8.0 and newer) or "none".
    pub kernel: String,
}

#[napi(object)]
pub struct DoctorSearch {
    /// File names handed to the dynamic loader, in order.
    pub tried: Vec<String>,
    /// The loader's own search path, in words.
    pub loader: String,
    /// Further directories looked in when the loader found nothing.
    pub directories: Vec<String>,
    /// Copies found there, outside the loader's path.
    pub elsewhere: Vec<String>,
}

#[napi(object)]
pub struct DoctorDriver {
    pub found: bool,
    pub file: Option<String>,
    /// The NVIDIA driver's version ("580.65.06"), when the system shows it.
    pub version: Option<String>,
    /// The newest CUDA release the driver supports ("13.0").
    pub cuda_version: Option<String>,
    /// The CUDA release apb needs the driver to support.
    pub cuda_required: String,
    pub cuda_supported: bool,
    pub problem: Option<String>,
    pub fix: Option<String>,
    pub search: DoctorSearch,
}

#[napi(object)]
pub struct DoctorLibrary {
    /// "cuBLAS", "cuBLASLt" or "NCCL".
    pub name: String,
    pub found: bool,
    pub file: Option<String>,
    pub version: Option<String>,
    pub problem: Option<String>,
    pub fix: Option<String>,
    pub search: DoctorSearch,
}

#[napi(object)]
pub struct DoctorReport {
    pub gpus: Vec<DoctorGpu>,
    pub driver: DoctorDriver,
    pub cublas: DoctorLibrary,
    pub cublas_lt: DoctorLibrary,
    pub nccl: DoctorLibrary,
    /// Whether this build carries the CUDA kernels.
    pub kernels_built: bool,
    /// The backends of this build (see `backends()`).
    pub backends: Vec<String>,
}

fn search(s: Search) -> DoctorSearch {
    DoctorSearch { tried: s.tried, loader: s.loader, directories: s.directories, elsewhere: s.elsewhere }
}

fn gpu(g: GpuInfo) -> DoctorGpu {
    DoctorGpu {
        index: g.index,
        name: g.name,
        compute_capability: format!("{}.{}", g.compute_capability.0, g.compute_capability.1),
        total_memory_bytes: g.total_memory_bytes as f64,
        multiprocessors: g.multiprocessors,
        kernel: g.kernel.map_or("none", |k| k.name()).to_string(),
    }
}

fn driver(d: DriverInfo) -> DoctorDriver {
    DoctorDriver {
        found: d.found,
        file: d.file,
        version: d.version,
        cuda_version: d.cuda_version,
        cuda_required: format!("{}.{}", doctor::CUDA_REQUIRED.0, doctor::CUDA_REQUIRED.1),
        cuda_supported: d.cuda_supported,
        problem: d.problem,
        fix: d.fix,
        search: search(d.search),
    }
}

fn library(l: LibraryInfo) -> DoctorLibrary {
    DoctorLibrary { name: l.name.to_string(), found: l.found, file: l.file, version: l.version, problem: l.problem, fix: l.fix, search: search(l.search) }
}

/// What this machine offers apb: the NVIDIA driver and the CUDA version it supports, each GPU
/// and the kernel it runs, cuBLAS, cuBLASLt and NCCL (found or not, where it looked, how to
/// fix), and this build's kernels and backends. Runs without a GPU; never throws for what is
/// missing, only if the probe itself fails.
#[napi]
pub fn doctor() -> Result<DoctorReport> {
    super::guarded("doctor", || {
        let r = doctor::probe();
        Ok(DoctorReport {
            gpus: r.gpus.into_iter().map(gpu).collect(),
            driver: driver(r.driver),
            cublas: library(r.cublas),
            cublas_lt: library(r.cublas_lt),
            nccl: library(r.nccl),
            kernels_built: r.kernels_built,
            backends: super::backends(),
        })
    })
}
