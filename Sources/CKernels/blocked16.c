// The ResBlock's elementwise passes on oneDNN's `aBcd16b` activations (`[C / 16, hw, 16]` per
// sample), so a Winograd convolution's blocked output needs no reorder: the residual reads it and
// writes NHWC, the embedding bias is added in place.
#include "CKernels.h"
#include "simd.h"
#include "vector.h"

/// 16 floats (one channel block) at a time: one zmm register in the AVX-512 twin, two ymm or four
/// xmm in the others; elementwise, so every twin computes the same bits.
CK_INLINE void residual_body(
    const float *h, const float *s, float *y, float *slice, long slice_stride, long hw, int C, float scale
) {
    for (long p = 0; p < hw; p++) {
        const float *sr = s + p * C;
        float *yr = y + p * C;
        for (int k = 0; k < C; k += 16) {
            const v16 a = (v16_load(h + (long)k * hw + p * 16) + v16_load(sr + k)) * scale;
            v16_store(a, yr + k);
            if (slice) v16_store(a, slice + p * slice_stride + k);
        }
    }
}

CK_INLINE void bias_body(float *y, const float *t, long hw, int C) {
    for (int k = 0; k < C; k += 16) {
        const v16 tk = v16_load(t + k);
        float *yk = y + (long)k * hw;
        for (long p = 0; p < hw; p++) v16_store(v16_load(yk + p * 16) + tk, yk + p * 16);
    }
}

static void residual_generic(
    const float *h, const float *s, float *y, float *slice, long slice_stride, long hw, int C, float scale
) {
    residual_body(h, s, y, slice, slice_stride, hw, C, scale);
}

static void bias_generic(float *y, const float *t, long hw, int C) { bias_body(y, t, hw, C); }

#if CK_HAS_AVX2
CK_TARGET_AVX2 static void residual_avx2(
    const float *h, const float *s, float *y, float *slice, long slice_stride, long hw, int C, float scale
) {
    residual_body(h, s, y, slice, slice_stride, hw, C, scale);
}

CK_TARGET_AVX512 static void residual_avx512(
    const float *h, const float *s, float *y, float *slice, long slice_stride, long hw, int C, float scale
) {
    residual_body(h, s, y, slice, slice_stride, hw, C, scale);
}

CK_TARGET_AVX2 static void bias_avx2(float *y, const float *t, long hw, int C) { bias_body(y, t, hw, C); }
#endif

void ck_residual_blocked16(
    const float *h, const float *s, float *y, float *slice, long slice_stride, long hw, int channels, float scale
) {
    CK_DISPATCH_WIDE(residual, (h, s, y, slice, slice_stride, hw, channels, scale));
}

void ck_add_channel_bias_blocked16(float *y, const float *t, long hw, int channels) {
    CK_DISPATCH(bias, (y, t, hw, channels));
}
