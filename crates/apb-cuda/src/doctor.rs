//! What this machine offers apb (`apb doctor`): the NVIDIA driver and the CUDA version it
//! supports, its GPUs and which of apb's kernels each can run, and the libraries the engine
//! loads at run time (cuBLAS, cuBLASLt, NCCL). Everything is found the way the engine will
//! find it, through the dynamic loader, and reported as data: nothing here panics, and a
//! machine without a GPU gets a report, not an error.
//!
//! The driver is read through cudarc, the one binding of it, but only once the driver has
//! said it supports CUDA 13.0: cudarc resolves every symbol of the release it was built for
//! when it first opens libcuda and panics on a driver too old to have them all, which is
//! exactly the machine a doctor has to describe. That one question, cuDriverGetVersion, is
//! asked through the library the loader opened.

use std::ffi::c_int;
use std::path::{Path, PathBuf};

use cudarc::driver::result;
use cudarc::driver::sys::{self, CUdevice_attribute};
use libloading::Library;

use crate::attention::AttentionKernel;

/// The CUDA release the driver must support: the kernels are compiled by nvcc 13.0
/// (scripts/cuda-toolchain.mjs) and the driver bindings name CUDA 13.0's entry points.
pub const CUDA_REQUIRED: (u32, u32) = (13, 0);
/// The first NVIDIA driver branch that supports CUDA 13.0.
const DRIVER_REQUIRED: &str = "580";

pub const DRIVER_NAMES: &[&str] = &["libcuda.so.1", "libcuda.so"];
pub const CUBLAS_NAMES: &[&str] = &["libcublas.so.13", "libcublas.so.12", "libcublas.so"];
pub const CUBLASLT_NAMES: &[&str] = &["libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"];
pub const NCCL_NAMES: &[&str] = &["libnccl.so.2", "libnccl.so"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuInfo {
    pub index: u32,
    pub name: String,
    pub compute_capability: (u32, u32),
    pub total_memory_bytes: u64,
    pub multiprocessors: u32,
    /// The attention kernel it runs; None before compute capability 8.0, where none does.
    pub kernel: Option<AttentionKernel>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverInfo {
    /// Whether libcuda could be loaded.
    pub found: bool,
    /// The libcuda file the loader opened.
    pub file: Option<String>,
    /// The kernel module's version ("580.65.06"), when the system shows it.
    pub version: Option<String>,
    /// The newest CUDA release the driver supports ("13.0", from cuDriverGetVersion).
    pub cuda_version: Option<String>,
    /// Whether that is at least [`CUDA_REQUIRED`].
    pub cuda_supported: bool,
    /// What stops apb from using the driver, if anything.
    pub problem: Option<String>,
    /// How to fix it.
    pub fix: Option<String>,
    /// The names handed to the loader and the directories looked in.
    pub search: Search,
}

impl DriverInfo {
    /// Adds a problem (and its fix) to those already found, "; "-separated.
    fn report(&mut self, problem: String, fix: Option<String>) {
        let join = |old: Option<String>, new: String| Some(match old {
            Some(old) => format!("{old}; {new}"),
            None => new,
        });
        self.problem = join(self.problem.take(), problem);
        if let Some(fix) = fix {
            self.fix = join(self.fix.take(), fix);
        }
    }
}

/// A shared library the engine loads at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibraryInfo {
    /// Its usual name: "cuBLAS", "cuBLASLt", "NCCL".
    pub name: &'static str,
    pub found: bool,
    pub file: Option<String>,
    /// Its own report of its version ("13.0.2").
    pub version: Option<String>,
    pub problem: Option<String>,
    pub fix: Option<String>,
    pub search: Search,
}

/// Where a library was looked for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Search {
    /// File names handed to the dynamic loader, in order.
    pub tried: Vec<String>,
    /// The loader's own search path (LD_LIBRARY_PATH, the ld.so cache, the system
    /// directories), in words.
    pub loader: String,
    /// Further directories looked in when the loader found nothing (the CUDA toolkit's,
    /// Python's nvidia wheels', conda's).
    pub directories: Vec<String>,
    /// Copies found there, outside the loader's search path.
    pub elsewhere: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub driver: DriverInfo,
    pub gpus: Vec<GpuInfo>,
    pub cublas: LibraryInfo,
    pub cublas_lt: LibraryInfo,
    pub nccl: LibraryInfo,
    pub kernels_built: bool,
}

/// Probes the machine. Loads the libraries it finds and keeps them loaded (the engine loads
/// the same ones later); creates no context and allocates nothing on a GPU.
pub fn probe() -> Report {
    let (driver, gpus) = probe_driver();
    Report {
        driver,
        gpus,
        cublas: probe_library(&CUBLAS),
        cublas_lt: probe_library(&CUBLASLT),
        nccl: probe_library(&NCCL),
        kernels_built: crate::kernels_built(),
    }
}

// --- the dynamic loader ----------------------------------------------------------------

/// The outcome of handing `names` to the loader in turn.
struct Opened {
    /// The first name that loaded, and the library, kept loaded for the rest of the process:
    /// NVIDIA's libraries register teardown work that must not run while they are unloaded
    /// under it, and the engine opens them again anyway.
    lib: Option<(&'static str, &'static Library)>,
    /// The loader's complaint about a file that exists but would not load (a missing
    /// dependency, a wrong architecture), as opposed to "no such file".
    error: Option<String>,
}

fn open_first(names: &[&'static str]) -> Opened {
    let mut error = None;
    for &name in names {
        // SAFETY: loading runs the library's initialisers. The names are those of NVIDIA's
        // driver, cuBLAS and NCCL, whose initialisers every CUDA program runs the same way
        // (dlopen), need nothing from the caller and touch no state of ours; nothing in the
        // library is called until a symbol is looked up with its declared C signature.
        match unsafe { Library::new(name) } {
            Ok(lib) => return Opened { lib: Some((name, Box::leak(Box::new(lib)))), error },
            Err(e) => {
                let text = e.to_string();
                if error.is_none() && !text.contains(&format!("{name}: cannot open shared object file")) {
                    error = Some(text);
                }
            }
        }
    }
    Opened { lib: None, error }
}

/// The full path of a loaded library whose file name starts with `prefix` ("libcublas.so"),
/// from the process's memory map; None where the system has no /proc.
fn loaded_file(prefix: &str) -> Option<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|line| line.find('/').map(|at| &line[at..]))
        .find(|path| Path::new(path).file_name().and_then(|f| f.to_str()).is_some_and(|f| f.starts_with(prefix)))
        .map(str::to_string)
}

/// "libcublas.so.13" -> "libcublas.so".
fn stem(name: &str) -> &str {
    name.find(".so").map_or(name, |at| &name[..at + 3])
}

fn loader_search() -> String {
    let ld = std::env::var("LD_LIBRARY_PATH").ok().filter(|v| !v.is_empty());
    format!(
        "the dynamic loader: LD_LIBRARY_PATH ({}), the ld.so cache (/etc/ld.so.conf), /lib and /usr/lib",
        ld.map_or_else(|| "not set".to_string(), |v| format!("={v}"))
    )
}

fn subdirs(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out: Vec<PathBuf> =
        entries.flatten().filter(|e| e.file_name().to_string_lossy().starts_with(prefix)).map(|e| e.path()).filter(|p| p.is_dir()).collect();
    out.sort();
    out
}

/// Directories where NVIDIA's libraries are often installed but the loader does not look by
/// default: the CUDA toolkit, Python's nvidia-* wheels (as PyTorch brings them), conda.
fn extra_dirs() -> Vec<PathBuf> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    let mut roots: Vec<PathBuf> = Vec::new();
    for home in ["CUDA_HOME", "CUDA_PATH"].iter().filter_map(|k| env(k)) {
        roots.push(home);
    }
    roots.extend(subdirs(Path::new("/usr/local"), "cuda"));
    let mut dirs: Vec<PathBuf> = Vec::new();
    for root in roots {
        dirs.push(root.join("lib64"));
        dirs.push(root.join("lib"));
        dirs.push(root.join("compat"));
        for target in subdirs(&root.join("targets"), "") {
            dirs.push(target.join("lib"));
        }
    }
    let mut prefixes: Vec<PathBuf> = vec![PathBuf::from("/usr"), PathBuf::from("/usr/local"), PathBuf::from("/opt/conda")];
    prefixes.extend(["VIRTUAL_ENV", "CONDA_PREFIX"].iter().filter_map(|k| env(k)));
    if let Some(home) = env("HOME") {
        prefixes.push(home.join(".local"));
    }
    for prefix in prefixes {
        if prefix != Path::new("/usr") {
            dirs.push(prefix.join("lib"));
        }
        for python in subdirs(&prefix.join("lib"), "python3") {
            for packages in ["site-packages", "dist-packages"] {
                for wheel in subdirs(&python.join(packages).join("nvidia"), "") {
                    dirs.push(wheel.join("lib"));
                }
            }
        }
    }
    // Outside the loader's defaults on Debian-family systems (the loader reads /usr/local/lib
    // only through the ld.so cache, refreshed by ldconfig); WSL keeps its libcuda apart.
    dirs.extend(["/usr/lib64", "/usr/lib/wsl/lib"].map(PathBuf::from));
    let mut seen = std::collections::HashSet::new();
    dirs.retain(|d| d.is_dir() && seen.insert(d.clone()));
    dirs
}

/// Looks for `names` in [`extra_dirs`].
fn search_elsewhere(names: &[&str]) -> Search {
    let dirs = extra_dirs();
    let elsewhere =
        dirs.iter().flat_map(|d| names.iter().map(move |n| d.join(n))).filter(|p| p.exists()).map(|p| p.display().to_string()).collect();
    Search {
        tried: names.iter().map(|n| n.to_string()).collect(),
        loader: loader_search(),
        directories: dirs.iter().map(|d| d.display().to_string()).collect(),
        elsewhere,
    }
}

/// What to do when the loader found `name`'s file but could not load it (`error`).
fn load_fix(error: &str) -> String {
    match error.split_once(": cannot open shared object file") {
        Some((missing, _)) => format!("{missing} is missing: install it, or put the directory that holds it on LD_LIBRARY_PATH"),
        None => "reinstall the library (the file found is damaged or built for another system)".to_string(),
    }
}

fn on_path_fix(search: &Search) -> Option<String> {
    let dir = search.elsewhere.first().and_then(|f| Path::new(f).parent()).map(|d| d.display().to_string())?;
    Some(format!("put its directory on the loader's path: export LD_LIBRARY_PATH={dir}:$LD_LIBRARY_PATH"))
}

// --- cuBLAS, cuBLASLt, NCCL -------------------------------------------------------------

const CUBLAS_INSTALL: &str = "install cuBLAS for CUDA 13: `apt install libcublas-13-0` from NVIDIA's CUDA repository, or `pip install nvidia-cublas` and put its lib directory (site-packages/nvidia/cu13/lib) on LD_LIBRARY_PATH";
const NCCL_INSTALL: &str = "install NCCL: `apt install libnccl2` from NVIDIA's CUDA repository, or `pip install nvidia-nccl-cu13` and put its lib directory (under site-packages/nvidia/) on LD_LIBRARY_PATH";

/// "major.minor.patch" from NVIDIA's packed version numbers (major*10000 + minor*100 + patch;
/// NCCL before 2.9 packed major*1000).
fn packed_version(v: u64) -> String {
    if v < 10000 {
        format!("{}.{}.{}", v / 1000, (v % 1000) / 100, v % 100)
    } else {
        format!("{}.{}.{}", v / 10000, (v / 100) % 100, v % 100)
    }
}

type GetProperty = unsafe extern "C" fn(c_int, *mut c_int) -> c_int;
type GetVersionSize = unsafe extern "C" fn() -> usize;
type GetVersionInt = unsafe extern "C" fn(*mut c_int) -> c_int;

fn cublas_version(lib: &'static Library) -> Result<String, String> {
    // libraryPropertyType: MAJOR_VERSION 0, MINOR_VERSION 1, PATCH_LEVEL 2. cublasGetProperty
    // needs no handle (cublasGetVersion does, and a handle needs a GPU).
    // SAFETY: cublas_api.h declares `cublasStatus_t cublasGetProperty(libraryPropertyType,
    // int*)`; both enums are C ints, which `GetProperty` spells. `lib` stays loaded forever.
    let get: GetProperty = *unsafe { lib.get::<GetProperty>(b"cublasGetProperty\0") }.map_err(|e| e.to_string())?;
    let mut parts = [0 as c_int; 3];
    for (kind, part) in parts.iter_mut().enumerate() {
        // SAFETY: `part` is a valid, writable int for the call's duration.
        let status = unsafe { get(kind as c_int, part) };
        if status != 0 {
            return Err(format!("cublasGetProperty failed with status {status}"));
        }
    }
    Ok(format!("{}.{}.{}", parts[0], parts[1], parts[2]))
}

fn cublaslt_version(lib: &'static Library) -> Result<String, String> {
    // SAFETY: cublasLt.h declares `size_t cublasLtGetVersion(void)`, which `GetVersionSize`
    // spells; it only returns a constant. `lib` stays loaded forever.
    let get: GetVersionSize = *unsafe { lib.get::<GetVersionSize>(b"cublasLtGetVersion\0") }.map_err(|e| e.to_string())?;
    // SAFETY: no arguments; see above.
    Ok(packed_version(unsafe { get() } as u64))
}

fn nccl_version(lib: &'static Library) -> Result<String, String> {
    // SAFETY: nccl.h declares `ncclResult_t ncclGetVersion(int*)`, ncclResult_t being a C
    // enum (an int), which `GetVersionInt` spells. `lib` stays loaded forever.
    let get: GetVersionInt = *unsafe { lib.get::<GetVersionInt>(b"ncclGetVersion\0") }.map_err(|e| e.to_string())?;
    let mut v: c_int = 0;
    // SAFETY: `v` is a valid, writable int for the call's duration.
    let status = unsafe { get(&mut v) };
    if status != 0 || v < 0 {
        return Err(format!("ncclGetVersion failed with status {status}"));
    }
    Ok(packed_version(v as u64))
}

/// How to find one library and what apb needs of it.
struct Wanted {
    name: &'static str,
    names: &'static [&'static str],
    version: fn(&'static Library) -> Result<String, String>,
    /// The major version apb's engine loads (cuBLAS follows the CUDA release), if it matters.
    major: Option<u32>,
    install: &'static str,
}

const CUBLAS: Wanted = Wanted { name: "cuBLAS", names: CUBLAS_NAMES, version: cublas_version, major: Some(CUDA_REQUIRED.0), install: CUBLAS_INSTALL };
const CUBLASLT: Wanted = Wanted { name: "cuBLASLt", names: CUBLASLT_NAMES, version: cublaslt_version, major: Some(CUDA_REQUIRED.0), install: CUBLAS_INSTALL };
const NCCL: Wanted = Wanted { name: "NCCL", names: NCCL_NAMES, version: nccl_version, major: None, install: NCCL_INSTALL };

fn probe_library(w: &Wanted) -> LibraryInfo {
    let (name, names) = (w.name, w.names);
    let opened = open_first(names);
    if let Some((soname, lib)) = opened.lib {
        let (version, problem, fix) = match ((w.version)(lib), w.major) {
            (Ok(v), Some(major)) if v.split('.').next().and_then(|m| m.parse::<u32>().ok()).is_some_and(|m| m < major) => {
                let problem = format!("{name} {v} belongs to an older CUDA release; apb's engine loads {name} {major} (CUDA {major})");
                (Some(v), Some(problem), Some(w.install.to_string()))
            }
            (Ok(v), _) => (Some(v), None, None),
            (Err(e), _) => (None, Some(format!("{soname} loaded but its version could not be read: {e}")), None),
        };
        return LibraryInfo {
            name,
            found: true,
            file: Some(loaded_file(stem(soname)).unwrap_or_else(|| soname.to_string())),
            version,
            problem,
            fix,
            search: Search { tried: names.iter().map(|n| n.to_string()).collect(), loader: loader_search(), ..Search::default() },
        };
    }
    let search = search_elsewhere(names);
    let (problem, fix) = match (&opened.error, on_path_fix(&search)) {
        (Some(error), _) => (format!("{name} was found but does not load: {error}"), load_fix(error)),
        (None, Some(fix)) => (format!("{name} is not on the loader's path (found {})", search.elsewhere.join(", ")), fix),
        (None, None) => (format!("{name} not found ({})", names.join(", ")), w.install.to_string()),
    };
    LibraryInfo { name, found: false, file: None, version: None, problem: Some(problem), fix: Some(fix), search }
}

// --- the driver and its GPUs ------------------------------------------------------------

/// cuDriverGetVersion's C signature: CUresult (an int) f(int*), unchanged since CUDA 2.2.
type CuDriverGetVersion = unsafe extern "C" fn(*mut c_int) -> c_int;

/// The newest CUDA release the driver supports, (major, minor), or None if it does not say.
fn cuda_release(lib: &'static Library) -> Option<(u32, u32)> {
    // SAFETY: the type is cuDriverGetVersion's C signature; `lib` is never unloaded, so the
    // pointer never dangles.
    let f = unsafe { lib.get::<CuDriverGetVersion>(b"cuDriverGetVersion\0") }.ok().map(|s| *s)?;
    let mut v: c_int = 0;
    // SAFETY: `v` is a valid, writable int; cuDriverGetVersion needs no cuInit.
    let status = unsafe { f(&mut v) };
    if status != 0 || v <= 0 {
        return None;
    }
    Some((v as u32 / 1000, (v as u32 % 1000) / 10))
}

/// "cuInit failed: CUDA_ERROR_NO_DEVICE (no CUDA-capable device is detected)".
fn failed(what: &str) -> impl Fn(result::DriverError) -> String + '_ {
    move |e| match (e.error_name(), e.error_string()) {
        (Ok(name), Ok(text)) => format!("{what} failed: {} ({})", name.to_string_lossy(), text.to_string_lossy()),
        _ => format!("{what} failed: {e:?}"),
    }
}

/// GPU `index`, through cudarc (the driver supports CUDA 13.0 and cuInit succeeded).
fn gpu(index: c_int) -> Result<GpuInfo, String> {
    let dev = result::device::get(index).map_err(failed("cuDeviceGet"))?;
    let name = result::device::get_name(dev).map_err(failed("cuDeviceGetName"))?.trim().to_string();
    // SAFETY: `dev` came from cuDeviceGet.
    let bytes = unsafe { result::device::total_mem(dev) }.map_err(failed("cuDeviceTotalMem"))?;
    let attribute = |a: CUdevice_attribute| -> Result<u32, String> {
        // SAFETY: `dev` came from cuDeviceGet.
        unsafe { result::device::get_attribute(dev, a) }.map(|v| v.max(0) as u32).map_err(failed("cuDeviceGetAttribute"))
    };
    let major = attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?;
    let minor = attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?;
    let multiprocessors = attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?;
    Ok(GpuInfo {
        index: index as u32,
        name,
        compute_capability: (major, minor),
        total_memory_bytes: bytes as u64,
        multiprocessors,
        kernel: AttentionKernel::for_capability(major, minor),
    })
}

/// The kernel module's version, from sysfs or /proc (absent in some containers and on WSL).
fn kernel_module_version() -> Option<String> {
    let looks_like_version = |t: &str| t.split('.').count() >= 2 && t.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if let Ok(v) = std::fs::read_to_string("/sys/module/nvidia/version") {
        let v = v.trim();
        if looks_like_version(v) {
            return Some(v.to_string());
        }
    }
    // "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 ..."
    let text = std::fs::read_to_string("/proc/driver/nvidia/version").ok()?;
    text.lines().find(|l| l.starts_with("NVRM"))?.split_whitespace().find(|t| looks_like_version(t)).map(str::to_string)
}

pub(crate) fn probe_driver() -> (DriverInfo, Vec<GpuInfo>) {
    let opened = open_first(DRIVER_NAMES);
    let Some((soname, lib)) = opened.lib else {
        let search = search_elsewhere(DRIVER_NAMES);
        let (problem, fix) = match (&opened.error, on_path_fix(&search)) {
            (Some(error), _) => (format!("the NVIDIA driver's libcuda.so.1 does not load: {error}"), load_fix(error)),
            (None, Some(fix)) => (format!("libcuda.so.1 is not on the loader's path (found {})", search.elsewhere.join(", ")), fix),
            (None, None) => (
                "no NVIDIA driver (libcuda.so.1 not found)".to_string(),
                "install NVIDIA's driver (it provides libcuda.so.1); in a container, start it with the NVIDIA Container Toolkit (docker run --gpus all)"
                    .to_string(),
            ),
        };
        let driver = DriverInfo {
            found: false,
            file: None,
            version: kernel_module_version(),
            cuda_version: None,
            cuda_supported: false,
            problem: Some(problem),
            fix: Some(fix),
            search,
        };
        return (driver, Vec::new());
    };
    let mut driver = DriverInfo {
        found: true,
        file: Some(loaded_file(stem(soname)).unwrap_or_else(|| soname.to_string())),
        version: kernel_module_version(),
        cuda_version: None,
        cuda_supported: false,
        problem: None,
        fix: None,
        search: Search { tried: DRIVER_NAMES.iter().map(|n| n.to_string()).collect(), loader: loader_search(), ..Search::default() },
    };
    let Some((major, minor)) = cuda_release(lib) else {
        driver.report("the driver does not say which CUDA release it supports (cuDriverGetVersion failed)".into(), Some("reinstall NVIDIA's driver".into()));
        return (driver, Vec::new());
    };
    driver.cuda_version = Some(format!("{major}.{minor}"));
    driver.cuda_supported = (major, minor) >= CUDA_REQUIRED;
    if !driver.cuda_supported {
        let (need_major, need_minor) = CUDA_REQUIRED;
        driver.report(
            format!("the driver supports CUDA {major}.{minor}; apb's kernels and driver bindings need CUDA {need_major}.{need_minor} or newer"),
            Some(format!("update NVIDIA's driver to {DRIVER_REQUIRED} or newer")),
        );
        return (driver, Vec::new());
    }
    // From here on the driver has every entry point cudarc binds.
    // SAFETY: only asks whether cudarc can open libcuda (it panics on use otherwise).
    if !unsafe { sys::is_culib_present() } {
        driver.report(format!("{soname} loaded, but not under the names cudarc opens (libcuda.so)"), Some("reinstall NVIDIA's driver".into()));
        return (driver, Vec::new());
    }
    if let Err(e) = result::init().map_err(failed("cuInit")) {
        let fix = init_fix(&e);
        driver.report(e, Some(fix));
        return (driver, Vec::new());
    }
    let count = match result::device::get_count().map_err(failed("cuDeviceGetCount")) {
        Ok(n) => n,
        Err(e) => {
            driver.report(e, None);
            return (driver, Vec::new());
        }
    };
    let mut gpus = Vec::new();
    for index in 0..count.max(0) {
        match gpu(index) {
            Ok(g) => gpus.push(g),
            Err(e) => driver.report(format!("GPU {index}: {e}"), None),
        }
    }
    (driver, gpus)
}

fn init_fix(error: &str) -> String {
    if error.contains("CUDA_ERROR_NO_DEVICE") {
        "no GPU is visible to this process: check `nvidia-smi`, CUDA_VISIBLE_DEVICES, and in a container `--gpus all`".into()
    } else if error.contains("MISMATCH") || error.contains("INSUFFICIENT_DRIVER") || error.contains("COMPAT") {
        "libcuda.so.1 does not match the loaded kernel module: reinstall NVIDIA's driver (or reboot after an update)".into()
    } else {
        "check the driver with `nvidia-smi`".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_by_compute_capability() {
        assert_eq!(AttentionKernel::for_capability(9, 0), Some(AttentionKernel::Sm90));
        assert_eq!(AttentionKernel::for_capability(8, 0), Some(AttentionKernel::Portable));
        assert_eq!(AttentionKernel::for_capability(8, 9), Some(AttentionKernel::Portable));
        assert_eq!(AttentionKernel::for_capability(10, 0), Some(AttentionKernel::Portable));
        assert_eq!(AttentionKernel::for_capability(12, 0), Some(AttentionKernel::Portable));
        assert_eq!(AttentionKernel::for_capability(7, 5), None);
        assert_eq!(AttentionKernel::Sm90.name(), "sm90");
    }

    #[test]
    fn versions_unpack() {
        assert_eq!(packed_version(22105), "2.21.5"); // NCCL 2.21.5
        assert_eq!(packed_version(2708), "2.7.8"); // NCCL before 2.9
        assert_eq!(packed_version(130002), "13.0.2"); // cuBLASLt 13.0.2
        assert_eq!(stem("libcublas.so.13"), "libcublas.so");
        assert_eq!(stem("libnccl.so"), "libnccl.so");
    }

    #[test]
    fn fixes_name_what_is_missing() {
        let fix = load_fix("libcublasLt.so.13: cannot open shared object file: No such file or directory");
        assert!(fix.starts_with("libcublasLt.so.13 is missing"), "{fix}");
        let s = Search { elsewhere: vec!["/opt/x/lib/libnccl.so.2".into()], ..Search::default() };
        assert_eq!(on_path_fix(&s).as_deref(), Some("put its directory on the loader's path: export LD_LIBRARY_PATH=/opt/x/lib:$LD_LIBRARY_PATH"));
        assert_eq!(on_path_fix(&Search::default()), None);
    }

    #[test]
    fn driver_problems_accumulate() {
        let mut d = DriverInfo {
            found: true,
            file: None,
            version: None,
            cuda_version: None,
            cuda_supported: false,
            problem: None,
            fix: None,
            search: Search::default(),
        };
        d.report("old driver".into(), Some("update it".into()));
        d.report("cuInit failed".into(), None);
        assert_eq!(d.problem.as_deref(), Some("old driver; cuInit failed"));
        assert_eq!(d.fix.as_deref(), Some("update it"));
    }

    /// Runs anywhere: with or without a driver, GPU or library, the probe returns a report
    /// whose parts agree with each other.
    #[test]
    fn probe_reports_consistently() {
        let r = probe();
        let d = &r.driver;
        if d.found {
            assert!(d.file.is_some());
            if !d.cuda_supported {
                assert!(d.cuda_version.is_none() || d.problem.is_some(), "an old driver must be reported: {d:?}");
            }
        } else {
            assert!(r.gpus.is_empty(), "GPUs listed without a driver");
            assert!(d.file.is_none() && d.cuda_version.is_none() && !d.cuda_supported);
            assert!(d.problem.is_some() && d.fix.is_some());
            assert_eq!(d.search.tried, DRIVER_NAMES);
            if d.search.elsewhere.is_empty() && !d.problem.as_deref().unwrap_or("").contains("does not load") {
                assert_eq!(d.problem.as_deref(), Some("no NVIDIA driver (libcuda.so.1 not found)"));
            }
        }
        for (i, g) in r.gpus.iter().enumerate() {
            assert_eq!(g.index as usize, i);
            assert_eq!(g.kernel, AttentionKernel::for_capability(g.compute_capability.0, g.compute_capability.1));
        }
        for lib in [&r.cublas, &r.cublas_lt, &r.nccl] {
            assert_eq!(lib.found, lib.file.is_some(), "{lib:?}");
            assert!(!lib.search.tried.is_empty() && lib.search.loader.contains("LD_LIBRARY_PATH"));
            if lib.found {
                assert_eq!(lib.fix.is_some(), lib.problem.as_deref().is_some_and(|p| p.contains("older CUDA release")), "{lib:?}");
            } else {
                assert!(lib.version.is_none());
                assert!(lib.problem.as_deref().is_some_and(|p| p.contains(lib.name)), "{lib:?}");
                assert!(lib.fix.as_deref().is_some_and(|f| !f.is_empty()));
            }
        }
        assert_eq!(r.kernels_built, crate::kernels_built());
        // A second probe sees the same machine (libraries stay loaded; nothing is torn down).
        assert_eq!(probe(), r);
    }
}
