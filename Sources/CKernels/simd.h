#ifndef ONESTEP_CKERNELS_SIMD_H
#define ONESTEP_CKERNELS_SIMD_H

#if defined(__x86_64__) && defined(__clang__)
#define CK_HAS_AVX2 1
#define CK_TARGET_AVX2 __attribute__((target("avx2,fma")))
#else
#define CK_HAS_AVX2 0
#define CK_TARGET_AVX2
#endif

#endif
