//! The wasm ABI: a few C functions over linear memory, in place of wasm-bindgen (which the
//! Rust 1.63 toolchain here cannot fetch). The host writes UTF-8 input into a buffer from
//! `apb_alloc`, calls `apb_call` (which returns the result's length), and reads the JSON result
//! at `apb_result_ptr`. The module is single-threaded, so one result buffer suffices.

use std::cell::RefCell;

thread_local! {
    static RESULT: RefCell<Vec<u8>> = RefCell::new(Vec::new());
}

/// Operation codes, in the order of `crate::OPS`.
fn op_name(op: u32) -> &'static str {
    crate::OPS.get(op as usize).copied().unwrap_or("")
}

#[no_mangle]
pub extern "C" fn apb_alloc(len: usize) -> *mut u8 {
    let mut buf = Vec::<u8>::with_capacity(len.max(1));
    let ptr = buf.as_mut_ptr();
    std::mem::forget(buf);
    ptr
}

/// # Safety
/// `ptr` must come from `apb_alloc(len)` with the same `len`, and not be freed twice.
#[no_mangle]
pub unsafe extern "C" fn apb_free(ptr: *mut u8, len: usize) {
    // SAFETY: the caller passes back exactly what apb_alloc handed out, so this rebuilds the
    // Vec that was forgotten there, with its capacity.
    drop(Vec::from_raw_parts(ptr, 0, len.max(1)));
}

/// Runs operation `op` on `len` bytes at `ptr` and returns the result's length in bytes.
///
/// # Safety
/// `ptr` must point to `len` initialised bytes inside this module's memory.
#[no_mangle]
pub unsafe extern "C" fn apb_call(op: u32, ptr: *const u8, len: usize) -> usize {
    // SAFETY: the caller wrote `len` bytes at `ptr` (from apb_alloc) before calling.
    let bytes = std::slice::from_raw_parts(ptr, len);
    let out = match std::str::from_utf8(bytes) {
        Ok(text) => crate::call(op_name(op), text),
        Err(_) => crate::call("plan", "\u{0}"),
    };
    RESULT.with(|r| {
        let mut r = r.borrow_mut();
        *r = out.into_bytes();
        r.len()
    })
}

#[no_mangle]
pub extern "C" fn apb_result_ptr() -> *const u8 {
    RESULT.with(|r| r.borrow().as_ptr())
}
