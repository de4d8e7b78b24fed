//! The C boundary: every exported function runs its body through [`call`], which
//! - settles this thread's last error when the body is done (so success leaves
//!   `pixcache_last_error()` empty, and a failure sets it),
//! - catches any panic so it can never unwind into C (which would abort the host), reporting it
//!   as `PIXCACHE_RESULT_PANIC` with the panic's message,
//! - turns an `Err` into the function's failure value plus the last error.
//!
//! It also holds the pointer helpers that turn C handles into Rust references. They are the only
//! place where handle pointers are dereferenced; each states why that is sound.

use std::any::Any;
use std::ffi::{c_char, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::error::{clear_last_error, restore_last_error, set_last_error, take_last_error};
use super::vector_state::clear_upper_halves;
use crate::error::{Error, ErrorKind, Result};

/// Runs `body` at the C boundary; see the module documentation.
///
/// The last error is settled once, *after* `body` returns (a success touches the thread-local
/// only while some thread may hold an error; see `error.rs`):
/// `body` may run foreign release callbacks that make pixcache calls of their own, and whatever
/// those left behind, the caller sees the outcome of its own call.
#[inline(always)]
pub(crate) fn call<T>(failure: T, body: impl FnOnce() -> Result<T>) -> T {
    // Not written as `call_reporting` with no report: carrying the `(T, Option<Error>)` pair
    // through made LLVM copy its padding through overlapping stack slots on the success path
    // (a store-forwarding stall, +1.5 ns on a key hit).
    clear_upper_halves();
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(value)) => {
            clear_last_error();
            value
        }
        Ok(Err(error)) => fail(&error, failure),
        Err(payload) => fail(&panic_error(payload.as_ref()), failure),
    }
}

/// Like [`call`] for functions that return a value *and* may report an error with it (a refused
/// `pixcache_insert_key` returns a never-valid key and sets `PIXCACHE_RESULT_REFUSED`).
#[inline(always)]
pub(crate) fn call_reporting<T>(
    failure: T,
    body: impl FnOnce() -> Result<(T, Option<Error>)>,
) -> T {
    clear_upper_halves();
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok((value, report))) => {
            match report {
                Some(error) => set_last_error(&error),
                None => clear_last_error(),
            }
            value
        }
        Ok(Err(error)) => fail(&error, failure),
        Err(payload) => fail(&panic_error(payload.as_ref()), failure),
    }
}

fn fail<T>(error: &Error, failure: T) -> T {
    set_last_error(error);
    failure
}

/// Like [`call`] for functions that cannot fail (the `*_free` functions): it still catches
/// panics, but leaves the last error as it was, so freeing objects (C++ destructors, cleanup
/// code) between a failing call and reading `pixcache_last_error()` does not erase the error,
/// even when a release callback run by the free makes failing pixcache calls of its own.
pub(crate) fn call_keeping_error(body: impl FnOnce()) {
    clear_upper_halves();
    let saved = take_last_error();
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(()) => restore_last_error(saved),
        Err(payload) => set_last_error(&panic_error(payload.as_ref())),
    }
}

fn panic_error(payload: &(dyn Any + Send)) -> Error {
    // The core unwinds with an `Error` (not a panic: no hook runs) when a call cannot go on at
    // all, e.g. a cache called from its own visit callback (`lock.rs`, `reentered`).
    if let Some(error) = payload.downcast_ref::<Error>() {
        return error.clone();
    }
    let text = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("unknown panic payload");
    Error::new(
        ErrorKind::Panic,
        format!("internal error (a bug in pixcache, please report it): {text}"),
    )
}

/// An opaque C handle type, tied to the Rust type its pointers really point to (a `Box` made by
/// [`into_raw`]). The C type is never constructed; it only gives pointers a distinct name.
pub(crate) trait Handle {
    /// The Rust value behind the handle.
    type Target;
}

pub(crate) fn null_error(name: &str) -> Error {
    Error::new(ErrorKind::NullArgument, format!("{name} is NULL"))
}

/// Gives ownership of `value` to C as a handle pointer. The allocation is fallible: when the
/// allocator refuses, this reports `OutOfMemory` instead of aborting the host (`Box::new` would).
pub(crate) fn into_raw<H: Handle>(value: H::Target) -> Result<*mut H> {
    let layout = std::alloc::Layout::new::<H::Target>();
    if layout.size() == 0 {
        return Ok(Box::into_raw(Box::new(value)).cast::<H>());
    }
    // SAFETY: the layout has a non-zero size.
    let ptr = unsafe { std::alloc::alloc(layout) }.cast::<H::Target>();
    if ptr.is_null() {
        return Err(Error::new(
            ErrorKind::OutOfMemory,
            "cannot allocate a handle",
        ));
    }
    // SAFETY: `ptr` is a fresh, suitably aligned allocation for one `H::Target`. Memory from the
    // global allocator with `Layout::new::<T>()` is what `Box::from_raw` (in `free`) expects.
    unsafe { ptr.write(value) };
    Ok(ptr.cast::<H>())
}

/// Borrows the value behind a handle; NULL is an error naming `name`.
///
/// # Safety
/// `ptr` is NULL or a live handle made by [`into_raw`] (or, for caches, the global cache), not
/// being written through by another thread for the duration of the borrow. This is the C API's
/// contract (README, "API conventions"): C cannot express it, pixcache cannot check it.
pub(crate) unsafe fn try_ref<'a, H: Handle>(ptr: *const H, name: &str) -> Result<&'a H::Target> {
    // SAFETY: per this function's contract, a non-NULL `ptr` points to a live `H::Target`.
    unsafe { ptr.cast::<H::Target>().as_ref() }.ok_or_else(|| null_error(name))
}

/// Mutably borrows the value behind a handle; NULL is an error naming `name`.
///
/// # Safety
/// As [`try_ref`], and no other reference to the same handle is alive during the borrow.
pub(crate) unsafe fn try_mut<'a, H: Handle>(ptr: *mut H, name: &str) -> Result<&'a mut H::Target> {
    // SAFETY: per this function's contract, a non-NULL `ptr` points to a live, unaliased value.
    unsafe { ptr.cast::<H::Target>().as_mut() }.ok_or_else(|| null_error(name))
}

/// Takes back ownership of a handle made by [`into_raw`] and drops it. NULL does nothing.
///
/// # Safety
/// `ptr` is NULL or a live handle made by [`into_raw`] that C will not use again.
pub(crate) unsafe fn free<H: Handle>(ptr: *mut H) {
    if !ptr.is_null() {
        // SAFETY: per the contract, `ptr` came from `Box::into_raw` and is given back once.
        drop(unsafe { Box::from_raw(ptr.cast::<H::Target>()) });
    }
}

/// Reads a NUL-terminated UTF-8 string argument.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that stays alive and unchanged for `'a`.
pub(crate) unsafe fn try_str<'a>(ptr: *const c_char, name: &str) -> Result<&'a str> {
    if ptr.is_null() {
        return Err(null_error(name));
    }
    // SAFETY: non-NULL and NUL-terminated per this function's contract.
    utf8(unsafe { CStr::from_ptr(ptr) }.to_bytes(), name)
}

/// Reads `len` bytes at `ptr` (a string argument not yet checked for UTF-8); NULL with
/// `len == 0` is the empty string.
///
/// # Safety
/// `ptr` is NULL or points to `len` readable bytes that stay alive and unchanged for `'a`.
pub(crate) unsafe fn try_bytes_n<'a>(
    ptr: *const c_char,
    len: usize,
    name: &str,
) -> Result<&'a [u8]> {
    if ptr.is_null() {
        return if len == 0 {
            Ok(&[])
        } else {
            Err(null_error(name))
        };
    }
    if len > isize::MAX as usize {
        return Err(Error::new(
            ErrorKind::TooLarge,
            format!("{name} length {len} is impossible"),
        ));
    }
    // SAFETY: non-NULL, `len <= isize::MAX`, and `len` readable bytes per this function's contract.
    Ok(unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) })
}

/// Reads a NUL-terminated file path argument (any bytes but NUL: paths need not be UTF-8).
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that stays alive and unchanged for `'a`.
pub(crate) unsafe fn try_path<'a>(ptr: *const c_char, name: &str) -> Result<&'a std::path::Path> {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: forwarded to the caller.
    let bytes = unsafe { try_cstr(ptr, name) }?.to_bytes();
    Ok(std::path::Path::new(std::ffi::OsStr::from_bytes(bytes)))
}

/// Reads a NUL-terminated string argument's bytes, not yet checked for UTF-8.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that stays alive and unchanged for `'a`.
pub(crate) unsafe fn try_bytes<'a>(ptr: *const c_char, name: &str) -> Result<&'a [u8]> {
    // SAFETY: forwarded to the caller.
    Ok(unsafe { try_cstr(ptr, name) }?.to_bytes())
}

/// Reads a UTF-8 string argument given as `len` bytes at `ptr` (which may contain NULs).
///
/// # Safety
/// `ptr` is NULL or points to `len` readable bytes that stay alive and unchanged for `'a`.
/// A NULL `ptr` with `len == 0` is the empty string (as `std::string_view{}` passes it).
pub(crate) unsafe fn try_str_n<'a>(ptr: *const c_char, len: usize, name: &str) -> Result<&'a str> {
    // SAFETY: forwarded to the caller.
    utf8(unsafe { try_bytes_n(ptr, len, name) }?, name)
}

/// Checks that a string argument is UTF-8, naming it in the error.
pub(crate) fn utf8<'a>(bytes: &'a [u8], name: &str) -> Result<&'a str> {
    std::str::from_utf8(bytes).map_err(|e| {
        Error::new(
            ErrorKind::InvalidUtf8,
            format!(
                "{name} is not valid UTF-8 (bad byte at offset {})",
                e.valid_up_to()
            ),
        )
    })
}

/// Reads a NUL-terminated byte string (a file path, which need not be UTF-8 on Unix).
///
/// # Safety
/// As [`try_str`].
pub(crate) unsafe fn try_cstr<'a>(ptr: *const c_char, name: &str) -> Result<&'a CStr> {
    if ptr.is_null() {
        return Err(null_error(name));
    }
    // SAFETY: non-NULL and NUL-terminated per this function's contract.
    Ok(unsafe { CStr::from_ptr(ptr) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::error::last_error_message;

    #[test]
    fn a_panic_becomes_the_failure_value_and_a_message() {
        let r = call(-1, || -> Result<i32> { panic!("kaboom {}", 7) });
        assert_eq!(r, -1);
        assert!(last_error_message().contains("kaboom 7"));
        assert_eq!(call(0, || Ok(5)), 5);
        assert_eq!(last_error_message(), "");
    }
}
