//! A global allocator that refuses any single request above a cap. A reader that believes
//! a claimed size (`num_hidden_layers: 1099511627776`, a tensor of 2⁶⁰ bytes) asks for it
//! before touching the file; refusing makes that visible as an abort, which the supervisor
//! records as an over-allocation, instead of a machine that swaps or a lucky overcommit.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct Capped {
    cap: AtomicUsize,
}

/// Written to stderr before refusing; the supervisor looks for it.
pub const MARK: &str = "fuzz: over-allocation";

impl Capped {
    pub const fn new() -> Self {
        Self {
            cap: AtomicUsize::new(usize::MAX),
        }
    }

    pub fn set_cap(&self, bytes: usize) {
        self.cap.store(bytes, Ordering::Relaxed);
    }

    fn refuse(&self, size: usize) -> bool {
        if size <= self.cap.load(Ordering::Relaxed) {
            return false;
        }
        // Formatting an integer into stderr allocates nothing.
        let _ = writeln!(std::io::stderr(), "{MARK} of {size} bytes");
        true
    }
}

impl Default for Capped {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: every call is forwarded to `System` unchanged, or answered with null (allowed).
unsafe impl GlobalAlloc for Capped {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if self.refuse(layout.size()) {
            return std::ptr::null_mut();
        }
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if self.refuse(layout.size()) {
            return std::ptr::null_mut();
        }
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if self.refuse(new_size) {
            return std::ptr::null_mut();
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
