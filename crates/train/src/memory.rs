//! The process's allocator settings for training.

/// Makes glibc's allocator keep freed memory for reuse instead of handing it back to the
/// operating system: no allocation is served by its own `mmap` (`M_MMAP_MAX = 0`), the
/// heap is never trimmed (`M_TRIM_THRESHOLD = -1`), and every thread allocates from the one
/// main heap (`M_ARENA_MAX = 1`: a step run on a thread-pool worker otherwise takes its large
/// buffers from a per-thread arena, which cannot hold them: `multiret train --threads 2`,
/// word embeddings trained, measured 420 against 1,100 tokens/s).
///
/// A training step allocates and frees the same large buffers every step (activations, the
/// optimiser's temporaries over a 96M-value embedding matrix). By default each buffer over
/// 32 MiB is a fresh mapping, so every step pays page faults and page zeroing for all of
/// them: with the word embeddings trained, more time than the arithmetic (measured on e5-small:
/// 332 against 824 tokens/s). The cost is that the process's resident memory stays at its
/// peak.
///
/// Process-wide, so binaries call it (once, before any work), never libraries. Returns
/// whether the settings took effect: `false` off glibc, where it does nothing.
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const M_TRIM_THRESHOLD: i32 = -1;
        const M_MMAP_MAX: i32 = -4;
        const M_ARENA_MAX: i32 = -8;
        extern "C" {
            fn mallopt(param: i32, value: i32) -> i32;
        }
        // SAFETY: `mallopt` is glibc's (this target links glibc); it takes two ints, changes
        // only the allocator's tuning parameters, and is thread-safe.
        unsafe {
            mallopt(M_MMAP_MAX, 0) == 1
                && mallopt(M_TRIM_THRESHOLD, -1) == 1
                && mallopt(M_ARENA_MAX, 1) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}
