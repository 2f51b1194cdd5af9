//! SQLite's memory from this process's allocator.
//!
//! The bundled SQLite calls the C library's `malloc`, and sqlx copies every column
//! of every row with `sqlite3_value_dup` on its connection's own thread. glibc gives
//! each such thread an arena of its own that it seldom returns: at 32 concurrent
//! pages the server held about 45 MiB more on SQLite than on PostgreSQL, and a tenth
//! of a page's time went to `malloc`. Routed to the global allocator (mimalloc),
//! the same allocations are cheaper and their memory is reused across threads.
//!
//! SQLite asks for the size of a block it frees; like SQLite's own allocator where
//! the C library cannot tell, each block carries its size in an 8-byte header.

use std::alloc::{alloc, dealloc, realloc, Layout};
use std::ffi::{c_int, c_void};
use std::ptr::null_mut;
use std::sync::Once;

use libsqlite3_sys as ffi;

const HEADER: usize = 8;

fn layout(size: usize) -> Option<Layout> {
    Layout::from_size_align(size.checked_add(HEADER)?, HEADER).ok()
}

/// The block behind `p` and its size (as stored by [`x_malloc`]).
///
/// # Safety
/// `p` came from [`x_malloc`] or [`x_realloc`] and is not freed.
unsafe fn block(p: *mut c_void) -> (*mut u8, usize) {
    let base = (p as *mut u8).sub(HEADER);
    (base, (base as *const u64).read() as usize)
}

unsafe extern "C" fn x_malloc(n: c_int) -> *mut c_void {
    let Some(l) = usize::try_from(n).ok().and_then(layout) else {
        return null_mut();
    };
    let base = alloc(l);
    if base.is_null() {
        return null_mut();
    }
    (base as *mut u64).write(l.size() as u64 - HEADER as u64);
    base.add(HEADER) as *mut c_void
}

unsafe extern "C" fn x_free(p: *mut c_void) {
    if p.is_null() {
        return;
    }
    let (base, size) = block(p);
    if let Some(l) = layout(size) {
        dealloc(base, l);
    }
}

unsafe extern "C" fn x_realloc(p: *mut c_void, n: c_int) -> *mut c_void {
    if p.is_null() {
        return x_malloc(n);
    }
    let (base, size) = block(p);
    let (Some(old), Some(new)) = (layout(size), usize::try_from(n).ok().and_then(layout)) else {
        return null_mut();
    };
    let grown = realloc(base, old, new.size());
    if grown.is_null() {
        return null_mut();
    }
    (grown as *mut u64).write(new.size() as u64 - HEADER as u64);
    grown.add(HEADER) as *mut c_void
}

unsafe extern "C" fn x_size(p: *mut c_void) -> c_int {
    if p.is_null() {
        return 0;
    }
    c_int::try_from(block(p).1).unwrap_or(c_int::MAX)
}

unsafe extern "C" fn x_roundup(n: c_int) -> c_int {
    n.checked_add(7).map_or(n, |m| m & !7)
}

unsafe extern "C" fn x_init(_: *mut c_void) -> c_int {
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_shutdown(_: *mut c_void) {}

/// Installs the allocator, once, before SQLite's first use in this process. Where
/// SQLite was already initialised (it refuses then), it keeps the C library's.
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let methods = ffi::sqlite3_mem_methods {
            xMalloc: Some(x_malloc),
            xFree: Some(x_free),
            xRealloc: Some(x_realloc),
            xSize: Some(x_size),
            xRoundup: Some(x_roundup),
            xInit: Some(x_init),
            xShutdown: Some(x_shutdown),
            pAppData: null_mut(),
        };
        // SAFETY: SQLITE_CONFIG_MALLOC takes a pointer to a sqlite3_mem_methods, which
        // SQLite copies before returning; the functions above keep its contract
        // (8-byte aligned blocks, sizes as allocated, NULL on failure).
        let rc = unsafe { ffi::sqlite3_config(ffi::SQLITE_CONFIG_MALLOC, &methods) };
        if rc != ffi::SQLITE_OK {
            tracing::debug!(rc, "SQLite was already initialised; it keeps its allocator");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_keep_their_size_through_realloc() {
        unsafe {
            let p = x_malloc(13);
            assert!(!p.is_null());
            assert_eq!(x_size(p), 13);
            std::ptr::write_bytes(p as *mut u8, 7, 13);
            let q = x_realloc(p, 4000);
            assert_eq!(x_size(q), 4000);
            assert_eq!(*(q as *const u8).add(12), 7);
            x_free(q);
            x_free(null_mut());
            assert!(x_malloc(-1).is_null());
            assert_eq!(x_roundup(9), 16);
        }
    }
}
