#ifndef ONESTEP_CKERNELS_SIMD_H
#define ONESTEP_CKERNELS_SIMD_H

#if defined(__x86_64__) && defined(__clang__)
#define CK_HAS_AVX2 1
#define CK_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define CK_TARGET_AVX512 __attribute__((target("avx2,fma,avx512f,avx512vl")))
#else
#define CK_HAS_AVX2 0
#define CK_TARGET_AVX2
#define CK_TARGET_AVX512
#endif

/// Calls `name##_avx2(args)` when the process runs AVX2 + FMA (or AVX-512), else
/// `name##_generic(args)`; CK_DISPATCH_WIDE also `name##_avx512(args)` at the AVX-512 level.
#if CK_HAS_AVX2
#define CK_DISPATCH(name, args)                                         \
    do {                                                                \
        if (ck_simd_current() >= ck_simd_avx2) name##_avx2 args;        \
        else name##_generic args;                                       \
    } while (0)
#define CK_DISPATCH_WIDE(name, args)                                    \
    do {                                                                \
        ck_simd_level level_ = ck_simd_current();                       \
        if (level_ == ck_simd_avx512) name##_avx512 args;               \
        else if (level_ == ck_simd_avx2) name##_avx2 args;              \
        else name##_generic args;                                       \
    } while (0)
#else
#define CK_DISPATCH(name, args) name##_generic args
#define CK_DISPATCH_WIDE(name, args) name##_generic args
#endif

#endif
