/// Explicit parallelism for the kernels that can use several threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Par {
    /// Run on the calling thread.
    #[default]
    Seq,
    /// Split the work into this many parts run on the current rayon pool (needs the `std`
    /// feature; without it this is the same as [`Par::Seq`]). `Threads(0)` and `Threads(1)`
    /// mean [`Par::Seq`].
    Threads(usize),
}

impl Par {
    /// The number of parts the work is split into.
    pub fn degree(self) -> usize {
        match self {
            Par::Seq => 1,
            #[cfg(feature = "std")]
            Par::Threads(n) => n.max(1),
            #[cfg(not(feature = "std"))]
            Par::Threads(_) => 1,
        }
    }

    /// All the threads of the current rayon pool (or [`Par::Seq`] without `std`).
    pub fn all() -> Self {
        #[cfg(feature = "std")]
        {
            Par::Threads(rayon::current_num_threads())
        }
        #[cfg(not(feature = "std"))]
        {
            Par::Seq
        }
    }
}

/// Runs `f(i)` for `i in 0..parts`, in parallel when `std` is enabled and `parts > 1`.
#[cfg(feature = "alloc")]
pub(crate) fn for_each_part<F>(parts: usize, f: F)
where
    F: Fn(usize) + Sync + Send,
{
    #[cfg(feature = "std")]
    {
        if parts > 1 {
            rayon::scope(|s| {
                let f = &f;
                for i in 1..parts {
                    s.spawn(move |_| f(i));
                }
                f(0);
            });
            return;
        }
    }
    for i in 0..parts {
        f(i);
    }
}
