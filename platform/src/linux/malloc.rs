//! Tuning of glibc's allocator for a small, long-running daemon.

/// Caps the number of malloc arenas. glibc gives each thread that allocates its own arena
/// (up to eight per core), and each keeps its freed memory resident; a daemon that
/// allocates little, from few threads at a time, loses nothing measurable with one or two
/// and keeps a fraction of the resident memory. Call before starting threads. Does
/// nothing with another C library.
#[allow(unsafe_code)]
pub fn limit_malloc_arenas(max: i32) {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets an allocator tunable and touches no Rust-visible memory;
    // M_ARENA_MAX with a positive value is a documented setting. A return of 0 means
    // "not applied", which leaves glibc's default: harmless, so it is not checked.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, max.max(1));
    }
    #[cfg(not(target_env = "gnu"))]
    let _ = max;
}

/// Gives the allocator's free memory back to the kernel: the whole free pages of every
/// arena, not only the top of the heap (`malloc_trim(3)`: glibc 2.8 and later release free
/// pages in the middle of the heap with `MADV_DONTNEED`). Without it, pages a daemon
/// freed stay resident for ever and its heap creeps up as allocations of different sizes
/// interleave. Does nothing with another C library.
#[allow(unsafe_code)]
pub fn release_free_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only returns free pages of the allocator's own arenas to the
    // kernel; no live allocation is touched. The return value (whether anything was
    // released) needs no action.
    unsafe {
        libc::malloc_trim(0);
    }
}
