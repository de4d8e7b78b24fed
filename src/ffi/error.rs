//! Result codes and the per-thread last error (libgit2's model).
//!
//! A failing call stores a result code and a one-line message for the calling thread; every other
//! call settles them for its own outcome when it returns (clears them on success), except the
//! ones that cannot fail, which leave them alone: `pixcache_last_error`,
//! `pixcache_last_result`, `pixcache_result_str`, `pixcache_key_equal`, `pixcache_version`,
//! `pixcache_global` and the `*_free` functions (so cleanup between a failing call and reading the error keeps it).
//! So right after any other call, `pixcache_last_error()` is `""` exactly when it succeeded.

use std::cell::{Cell, RefCell};
use std::ffi::{c_char, c_int, CStr};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::{Error, ErrorKind};

/// What a pixcache call reports. The values are part of the ABI and are never renumbered.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PixcacheResult {
    /// Success.
    Ok = 0,
    /// A required pointer argument was NULL; the message names it.
    NullArgument = 1,
    /// A string argument was not valid UTF-8.
    InvalidUtf8 = 2,
    /// An argument is outside its documented range.
    InvalidArgument = 3,
    /// A size that cannot be represented or exceeds a limit (e.g. a 2^30 x 2^30 pixmap).
    TooLarge = 4,
    /// The allocator refused the memory.
    OutOfMemory = 5,
    /// The pixmap costs more than the whole cache limit; the cache refused it (as Qt does).
    Refused = 6,
    /// A generated key that is not valid in this cache: stale, removed, forged, or from another cache.
    InvalidKey = 7,
    /// The operation does not apply (e.g. pixel access on a foreign pixmap).
    Unsupported = 8,
    /// Reading or writing a file failed.
    Io = 9,
    /// The data is not an image this build can decode.
    Decode = 10,
    /// A bug in pixcache panicked; the panic was caught at the boundary.
    Panic = 11,
    /// A cache function was called from inside a visit callback (`pixcache_find_visit` and the
    /// like) on the same cache, which the callback's thread holds locked; the call did nothing.
    Reentrant = 12,
}

impl PixcacheResult {
    const ALL: [PixcacheResult; 13] = [
        PixcacheResult::Ok,
        PixcacheResult::NullArgument,
        PixcacheResult::InvalidUtf8,
        PixcacheResult::InvalidArgument,
        PixcacheResult::TooLarge,
        PixcacheResult::OutOfMemory,
        PixcacheResult::Refused,
        PixcacheResult::InvalidKey,
        PixcacheResult::Unsupported,
        PixcacheResult::Io,
        PixcacheResult::Decode,
        PixcacheResult::Panic,
        PixcacheResult::Reentrant,
    ];

    fn from_kind(kind: ErrorKind) -> Self {
        match kind {
            ErrorKind::NullArgument => PixcacheResult::NullArgument,
            ErrorKind::InvalidUtf8 => PixcacheResult::InvalidUtf8,
            ErrorKind::InvalidArgument => PixcacheResult::InvalidArgument,
            ErrorKind::TooLarge => PixcacheResult::TooLarge,
            ErrorKind::OutOfMemory => PixcacheResult::OutOfMemory,
            ErrorKind::Refused => PixcacheResult::Refused,
            ErrorKind::InvalidKey => PixcacheResult::InvalidKey,
            ErrorKind::Unsupported => PixcacheResult::Unsupported,
            ErrorKind::Io => PixcacheResult::Io,
            ErrorKind::Decode => PixcacheResult::Decode,
            ErrorKind::Panic => PixcacheResult::Panic,
            ErrorKind::Reentrant => PixcacheResult::Reentrant,
        }
    }

    fn description(self) -> &'static CStr {
        match self {
            PixcacheResult::Ok => c"success",
            PixcacheResult::NullArgument => c"a required pointer argument was NULL",
            PixcacheResult::InvalidUtf8 => c"a string argument was not valid UTF-8",
            PixcacheResult::InvalidArgument => c"an argument was out of range",
            PixcacheResult::TooLarge => c"a size was too large",
            PixcacheResult::OutOfMemory => c"out of memory",
            PixcacheResult::Refused => c"the pixmap costs more than the cache limit",
            PixcacheResult::InvalidKey => c"the key is not valid in this cache",
            PixcacheResult::Unsupported => c"the operation does not apply to this pixmap",
            PixcacheResult::Io => c"an I/O error occurred",
            PixcacheResult::Decode => c"the data could not be decoded as an image",
            PixcacheResult::Panic => c"internal error (caught panic)",
            PixcacheResult::Reentrant => c"the cache was called from inside its own visit callback",
        }
    }
}

// This thread's last error, in two thread-locals:
// - the result code, settled by every call (a success while no thread holds an error has
//   nothing to settle and skips it, see `THREADS_WITH_ERROR`): a `Cell` with no destructor is
//   the cheapest thread-local there is (no lazy destructor registration to check on each access), and it
//   stays usable while the thread's destructors run (a C++ `thread_local` whose destructor frees
//   a pixmap must not make pixcache panic);
// - the message and its terminating NUL, meaningful only while the code is not `Ok`, touched
//   only when a call fails or the message is read, and reused from one error to the next, so
//   reporting an error allocates nothing once the buffer is big enough. Reached with `try_with`:
//   once the thread's destructors have dropped it, errors simply have no message.
thread_local! {
    static LAST_CODE: Cell<PixcacheResult> = const { Cell::new(PixcacheResult::Ok) };
    static LAST_MESSAGE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// How many threads may hold a result code other than `Ok`: an upper bound, never too low.
///
/// Clearing the code on success is the one thing every call does, and a thread-local in a
/// shared library costs a call to `__tls_get_addr`. While this is zero, no thread holds an
/// error, so a successful call has nothing to clear and skips the thread-local altogether.
///
/// Why a relaxed load is enough: a thread asks only about its own code. It counted itself in
/// (by the increment in [`set_code`]) before its code left `Ok`, in its own program order, so its
/// later load sees that increment or a later value; and every decrement is some thread counting
/// *itself* out after its own increment, so no value this thread can load drops below its own
/// contribution while its code is not `Ok`. A thread that exits holding an error never counts
/// itself out: the bound then stays above zero and successful calls take the thread-local path
/// (correct, about a nanosecond slower), as they did before this counter existed.
///
/// On a cache line of its own: other threads write their counters (live pixmaps, key serials)
/// often, and this is read on every successful call.
static THREADS_WITH_ERROR: Padded = Padded(AtomicUsize::new(0));

#[repr(align(64))]
struct Padded(AtomicUsize);

/// Sets this thread's code, keeping [`THREADS_WITH_ERROR`] true: counted in before the code
/// leaves `Ok`, counted out after it is back.
fn set_code(code: PixcacheResult) -> PixcacheResult {
    let counter = &THREADS_WITH_ERROR.0;
    let old = LAST_CODE.get();
    let (was_ok, is_ok) = (old == PixcacheResult::Ok, code == PixcacheResult::Ok);
    if was_ok && !is_ok {
        counter.fetch_add(1, Ordering::Relaxed);
    }
    LAST_CODE.set(code);
    if !was_ok && is_ok {
        let before = counter.fetch_sub(1, Ordering::Relaxed);
        debug_assert!(before != 0, "a thread counted out that was not counted in");
    }
    old
}

#[inline(always)]
pub(crate) fn clear_last_error() {
    if THREADS_WITH_ERROR.0.load(Ordering::Relaxed) != 0 {
        clear_code();
    }
}

/// Kept out of line, so each call site holds just the load and the branch. Not `#[cold]`: once
/// a thread has exited holding an error, every success comes here.
#[inline(never)]
fn clear_code() {
    set_code(PixcacheResult::Ok);
}

/// The thread's last error, taken out (for [`restore_last_error`]).
pub(crate) struct SavedError(PixcacheResult, Vec<u8>);

pub(crate) fn take_last_error() -> SavedError {
    let code = set_code(PixcacheResult::Ok);
    let message = LAST_MESSAGE
        .try_with(|m| m.try_borrow_mut().map(|mut m| std::mem::take(&mut *m)))
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    SavedError(code, message)
}

pub(crate) fn restore_last_error(saved: SavedError) {
    set_code(saved.0);
    let _ = LAST_MESSAGE.try_with(|m| {
        if let Ok(mut m) = m.try_borrow_mut() {
            *m = saved.1;
        }
    });
}

pub(crate) fn set_last_error(error: &Error) {
    set_code(PixcacheResult::from_kind(error.kind()));
    let _ = LAST_MESSAGE.try_with(|m| {
        if let Ok(mut message) = m.try_borrow_mut() {
            message.clear();
            // Never abort while reporting (memory may be what ran out): if the buffer cannot
            // grow, report a fixed message that fits in any buffer we already have, or none.
            let text = error.message().as_bytes();
            let text: &[u8] = if message.try_reserve(text.len() + 1).is_ok() {
                text
            } else if message.capacity() >= 14 {
                b"out of memory"
            } else {
                return; // no room even for that: the code is set, the message reads ""
            };
            // One line, and no interior NUL that would cut the C string short.
            message.extend(text.iter().map(|&b| match b {
                b'\0' | b'\n' | b'\r' => b' ',
                b => b,
            }));
            message.push(0);
        }
    });
}

/// The last error's message as a Rust string (tests).
#[cfg(test)]
pub(crate) fn last_error_message() -> String {
    let ptr = pixcache_last_error();
    // SAFETY: pixcache_last_error returns a valid NUL-terminated string.
    unsafe { CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned()
}

/// The message of the last call on this thread that failed, or `""` if the last call succeeded.
///
/// Never NULL. The text is one line, UTF-8, and stays valid until the next pixcache call on this
/// thread (other than `pixcache_last_error`, `pixcache_last_result` and `pixcache_result_str`).
/// Copy it if you need it longer.
#[no_mangle]
pub extern "C" fn pixcache_last_error() -> *const c_char {
    if LAST_CODE.get() == PixcacheResult::Ok {
        return c"".as_ptr();
    }
    LAST_MESSAGE
        .try_with(|m| match m.try_borrow() {
            Ok(m) if !m.is_empty() => m.as_ptr().cast(),
            _ => c"".as_ptr(),
        })
        .unwrap_or(c"".as_ptr())
}

/// The result code of the last call on this thread: `PIXCACHE_RESULT_OK` if it succeeded.
#[no_mangle]
pub extern "C" fn pixcache_last_result() -> PixcacheResult {
    LAST_CODE.get()
}

/// A static, human-readable description of a result code (taken as an integer, so any value is
/// safe to pass). Unknown codes give `"unknown result code"`. Never NULL; never freed.
#[no_mangle]
pub extern "C" fn pixcache_result_str(code: c_int) -> *const c_char {
    PixcacheResult::ALL
        .iter()
        .find(|r| **r as c_int == code)
        .map_or(c"unknown result code".as_ptr(), |r| {
            r.description().as_ptr()
        })
}
