// 8-float vectors for the kernels (clang's ext_vector_type: SSE pairs on the baseline, one ymm
// register under AVX2), 16-float ones for the AVX-512 twins, and exp / SiLU on them.
#ifndef ONESTEP_CKERNELS_VECTOR_H
#define ONESTEP_CKERNELS_VECTOR_H

#include <string.h>

// v8 values cross inlined helpers only; the ABI note does not apply.
#pragma clang diagnostic ignored "-Wpsabi"

typedef float v8 __attribute__((ext_vector_type(8)));
typedef unsigned v8u __attribute__((ext_vector_type(8)));

#define CK_INLINE static inline __attribute__((always_inline))

CK_INLINE v8 v8_load(const float *p) {
    v8 v;
    memcpy(&v, p, sizeof v);
    return v;
}

CK_INLINE void v8_store(v8 v, float *p) { memcpy(p, &v, sizeof v); }

/// The first m (1...8) floats at p, zero-padded.
CK_INLINE v8 v8_load_n(const float *p, int m) {
    if (m == 8) return v8_load(p);
    float t[8] = {0};
    for (int i = 0; i < m; i++) t[i] = p[i];
    return v8_load(t);
}

CK_INLINE void v8_store_n(v8 v, float *p, int m) {
    if (m == 8) {
        v8_store(v, p);
        return;
    }
    float t[8];
    v8_store(v, t);
    for (int i = 0; i < m; i++) p[i] = t[i];
}

CK_INLINE float v8_sum(v8 v) {
    v8 t = v;
    return ((t[0] + t[4]) + (t[1] + t[5])) + ((t[2] + t[6]) + (t[3] + t[7]));
}

/// e^x to about 1 ulp for x in [-87, 88] (clamped there): Cephes expf's range reduction and
/// degree-6 polynomial, 2^n built in the exponent bits. SiLU and its derivative from it. Defined
/// once for each vector width (V: the float vector, U: the unsigned one); lane for lane the same
/// operations, so every width gives the same bits.
#define CK_DEFINE_EXP_SILU(V, U)                                              \
    CK_INLINE V V##_exp(V x) {                                                \
        x = __builtin_elementwise_min(x, (V)(88.0f));                         \
        x = __builtin_elementwise_max(x, (V)(-87.0f));                        \
        const float magic = 12582912.0f; /* 1.5 * 2^23: rounds to an integer */ \
        V kf = x * 1.44269504088896341f + magic;                              \
        V n = kf - magic;                                                     \
        V r = x - n * 0.693359375f;                                           \
        r = r - n * -2.12194440e-4f;                                          \
        V p = (V)(1.9875691500e-4f);                                          \
        p = p * r + 1.3981999507e-3f;                                         \
        p = p * r + 8.3334519073e-3f;                                         \
        p = p * r + 4.1665795894e-2f;                                         \
        p = p * r + 1.6666665459e-1f;                                         \
        p = p * r + 5.0000001201e-1f;                                         \
        p = p * (r * r) + r + 1.0f;                                           \
        U bits = (((U)kf - 0x4B400000u) + 127u) << 23;                        \
        return p * (V)bits;                                                   \
    }                                                                         \
    CK_INLINE V V##_silu(V x) { return x / (1.0f + V##_exp(-x)); }            \
    /* silu'(x) = s (1 + x (1 - s)), s = sigmoid(x). */                       \
    CK_INLINE V V##_silu_grad(V x) {                                          \
        V s = 1.0f / (1.0f + V##_exp(-x));                                    \
        return s * (1.0f + x * (1.0f - s));                                   \
    }

CK_DEFINE_EXP_SILU(v8, v8u)

/// 16-float vectors (one zmm register under AVX-512) for the AVX-512 twins' hot loops.
typedef float v16 __attribute__((ext_vector_type(16)));
typedef unsigned v16u __attribute__((ext_vector_type(16)));

CK_INLINE v16 v16_load(const float *p) {
    v16 v;
    memcpy(&v, p, sizeof v);
    return v;
}

CK_INLINE void v16_store(v16 v, float *p) { memcpy(p, &v, sizeof v); }

CK_DEFINE_EXP_SILU(v16, v16u)

#endif
