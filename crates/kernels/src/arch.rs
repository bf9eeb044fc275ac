//! Run-time (with `std`) or compile-time (without) selection of the instruction set.

use core::sync::atomic::{AtomicU8, Ordering};

/// The instruction-set paths the kernels have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// Portable scalar code.
    Scalar,
    /// x86-64 AVX2 + FMA.
    Avx2,
    /// x86-64 AVX-512F.
    Avx512,
    /// x86-64 AVX-512F with AVX-512 BF16 (`vdpbf16ps`).
    Avx512Bf16,
    /// x86-64 AVX-512 BF16 plus AMX tiles (`tdpbf16ps`), granted by the OS (Linux).
    Amx,
    /// aarch64 NEON.
    Neon,
}

impl Isa {
    /// Short lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Avx512Bf16 => "avx512bf16",
            Isa::Amx => "amx",
            Isa::Neon => "neon",
        }
    }

    /// Every path this CPU can run, from the plainest to the best (always starts with
    /// [`Isa::Scalar`]). The tests run each of them.
    pub fn available() -> impl Iterator<Item = Isa> {
        let best = detected_isa();
        [
            Isa::Scalar,
            Isa::Avx2,
            Isa::Avx512,
            Isa::Avx512Bf16,
            Isa::Amx,
            Isa::Neon,
        ]
        .into_iter()
        .filter(move |&isa| isa.supported_given(best))
    }

    fn supported_given(self, best: Isa) -> bool {
        match self {
            Isa::Scalar => true,
            Isa::Neon => best == Isa::Neon,
            Isa::Avx2 | Isa::Avx512 | Isa::Avx512Bf16 | Isa::Amx => {
                best != Isa::Neon && best != Isa::Scalar && self <= best
            }
        }
    }

    /// Whether this CPU can run `self`.
    pub fn is_supported(self) -> bool {
        self.supported_given(detected_isa())
    }
}

static DETECTED: AtomicU8 = AtomicU8::new(u8::MAX);

fn encode(isa: Isa) -> u8 {
    isa as u8
}

fn decode(v: u8) -> Isa {
    match v {
        1 => Isa::Avx2,
        2 => Isa::Avx512,
        3 => Isa::Avx512Bf16,
        4 => Isa::Amx,
        5 => Isa::Neon,
        _ => Isa::Scalar,
    }
}

/// The best instruction set this CPU supports, detected once.
///
/// The environment variable `MULTIRET_ISA` (`scalar`, `avx2`, `avx512`, `avx512bf16`, `neon`)
/// caps the choice, for testing and comparison; an unsupported or unknown value is ignored.
pub fn detected_isa() -> Isa {
    let v = DETECTED.load(Ordering::Relaxed);
    if v != u8::MAX {
        return decode(v);
    }
    #[cfg_attr(not(feature = "std"), allow(unused_mut))]
    let mut isa = detect();
    #[cfg(feature = "std")]
    if let Ok(cap) = std::env::var("MULTIRET_ISA") {
        let cap = match cap.as_str() {
            "scalar" => Some(Isa::Scalar),
            "avx2" => Some(Isa::Avx2),
            "avx512" => Some(Isa::Avx512),
            "avx512bf16" => Some(Isa::Avx512Bf16),
            "amx" => Some(Isa::Amx),
            "neon" => Some(Isa::Neon),
            _ => None,
        };
        if let Some(cap) = cap {
            if cap.supported_given(isa) {
                isa = cap;
            }
        }
    }
    DETECTED.store(encode(isa), Ordering::Relaxed);
    isa
}

#[cfg(all(target_arch = "x86_64", feature = "std"))]
fn detect() -> Isa {
    if std::arch::is_x86_feature_detected!("avx512f") {
        if std::arch::is_x86_feature_detected!("avx512bf16") {
            if amx_usable() {
                Isa::Amx
            } else {
                Isa::Avx512Bf16
            }
        } else {
            Isa::Avx512
        }
    } else if std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
    {
        Isa::Avx2
    } else {
        Isa::Scalar
    }
}

/// AMX-TILE and AMX-BF16 in CPUID, and the Linux kernel's permission to use tile data
/// (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`), requested once.
#[cfg(all(target_arch = "x86_64", feature = "std"))]
fn amx_usable() -> bool {
    let leaf7 = core::arch::x86_64::__cpuid_count(7, 0);
    let (bf16, tile) = (leaf7.edx & (1 << 22) != 0, leaf7.edx & (1 << 24) != 0);
    if !(bf16 && tile) {
        return false;
    }
    #[cfg(target_os = "linux")]
    {
        const SYS_ARCH_PRCTL: usize = 158;
        const ARCH_REQ_XCOMP_PERM: usize = 0x1023;
        const XFEATURE_XTILEDATA: usize = 18;
        let ret: isize;
        // SAFETY: the arch_prctl system call with these arguments only changes this process's
        // permission to use AMX tile state; it reads no memory of ours. `syscall` clobbers rcx
        // and r11, declared below.
        unsafe {
            core::arch::asm!(
                "syscall",
                inlateout("rax") SYS_ARCH_PRCTL as isize => ret,
                in("rdi") ARCH_REQ_XCOMP_PERM,
                in("rsi") XFEATURE_XTILEDATA,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        ret == 0
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

#[cfg(all(target_arch = "x86_64", not(feature = "std")))]
fn detect() -> Isa {
    if cfg!(all(
        target_feature = "avx512f",
        target_feature = "avx512bf16"
    )) {
        Isa::Avx512Bf16
    } else if cfg!(target_feature = "avx512f") {
        Isa::Avx512
    } else if cfg!(all(target_feature = "avx2", target_feature = "fma")) {
        Isa::Avx2
    } else {
        Isa::Scalar
    }
}

#[cfg(all(target_arch = "aarch64", feature = "std"))]
fn detect() -> Isa {
    if std::arch::is_aarch64_feature_detected!("neon") {
        Isa::Neon
    } else {
        Isa::Scalar
    }
}

#[cfg(all(target_arch = "aarch64", not(feature = "std")))]
fn detect() -> Isa {
    if cfg!(target_feature = "neon") {
        Isa::Neon
    } else {
        Isa::Scalar
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn detect() -> Isa {
    Isa::Scalar
}
