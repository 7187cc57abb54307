//! How the process returns freed memory. glibc raises its mmap threshold each time a large
//! mapped block is freed (up to 32 MiB), so after the first model is dropped, the next one's
//! tensors come from the heap, whose freed pages glibc keeps: loading and disposing models
//! left hundreds of MiB resident. A fixed threshold keeps every block of 1 MiB or more mapped
//! on its own, so dropping weights (and large activations) gives the pages back at once.

/// Called once when the addon loads.
pub fn return_large_frees_to_os() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const ONE_MIB: libc::c_int = 1 << 20;
        // SAFETY: mallopt only changes allocator parameters; it is called before this addon
        // allocates, and glibc serializes it with allocations made by other threads.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, ONE_MIB);
        }
    }
}
