//! CPU feature detection: which vector instructions ([`Isa`]) this CPU runs and the settings
//! allow, and [`simd`], which runs a loop compiled for them.

/// The instruction sets our loops are compiled for, in increasing width.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    /// As the crate is built: SSE2 on x86-64, plain Rust elsewhere (the browser).
    Portable,
    /// AVX2 with FMA: 8 lanes.
    Avx2,
    /// AVX-512 (F and BW): 16 lanes.
    Avx512,
    /// AVX-512 with VNNI's byte dot products (`vpdpbusd`), for the integer product over
    /// quantized activations; the float loops run as on `Avx512`.
    Avx512Vnni,
}

impl Isa {
    /// Every instruction set, in increasing width (the tests run each this CPU has).
    pub const ALL: [Isa; 4] = [Isa::Portable, Isa::Avx2, Isa::Avx512, Isa::Avx512Vnni];

    /// The widest this CPU runs (found once).
    pub fn detected() -> Self {
        static DETECTED: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *DETECTED.get_or_init(Self::detect)
    }

    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            // Every feature `x86::avx512` and `x86::avx2` are compiled for.
            let has = |features: &[bool]| features.iter().all(|&f| f);
            let avx2 = has(&[
                is_x86_feature_detected!("avx2"),
                is_x86_feature_detected!("fma"),
                is_x86_feature_detected!("f16c"),
            ]);
            if avx2
                && has(&[
                    is_x86_feature_detected!("avx512f"),
                    is_x86_feature_detected!("avx512bw"),
                    is_x86_feature_detected!("avx512dq"),
                    is_x86_feature_detected!("avx512vl"),
                ])
            {
                if is_x86_feature_detected!("avx512vnni") {
                    return Self::Avx512Vnni;
                }
                return Self::Avx512;
            }
            if avx2 {
                return Self::Avx2;
            }
        }
        Self::Portable
    }

    /// What [`simd`] and the quantized product use: [`Isa::detected`], or `Portable` where
    /// the settings turn `simd` off (`MENTALQLM_SIMD=0`, for comparisons).
    pub fn chosen() -> Self {
        if crate::settings::current().simd {
            Self::detected()
        } else {
            Self::Portable
        }
    }

    /// Whether this CPU runs it.
    pub fn available(self) -> bool {
        self <= Self::detected()
    }
}

/// Runs `f` compiled for the vector instructions `isa` ([`Isa::chosen`], found once per
/// loop, not per call). The crate is built for baseline x86-64, whose SSE2 holds four floats;
/// gemm picks its own kernels at run time, and our loops do the same through this. `f` is
/// inlined into a function compiled for those features, so it should hold the loop itself,
/// not calls out of the crate.
#[inline(always)]
pub fn simd<R>(isa: Isa, f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    match isa {
        // SAFETY: the CPU has every feature `avx512` is compiled for.
        Isa::Avx512 | Isa::Avx512Vnni => return unsafe { x86::avx512(f) },
        // SAFETY: as above, for `avx2`.
        Isa::Avx2 => return unsafe { x86::avx2(f) },
        Isa::Portable => {}
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = isa;
    f()
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c")]
    pub fn avx512<R>(f: impl FnOnce() -> R) -> R {
        f()
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub fn avx2<R>(f: impl FnOnce() -> R) -> R {
        f()
    }
}
