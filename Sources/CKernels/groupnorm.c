#include "CKernels.h"
#include "groupnorm_body.h"
#include "simd.h"

static void forward_generic(
    const float *x, float *y, long hw, int C, int G, const float *gamma, const float *beta, float eps, int silu,
    float *mean, float *rstd, float *work, int xb, int yb
) {
    gn_forward_body(x, y, hw, C, G, gamma, beta, eps, silu, mean, rstd, work, xb, yb, 0);
}

static void backward_generic(
    const float *x, const float *dz, float *dx, long hw, int C, int G, const float *gamma, const float *beta, int silu,
    const float *mean, const float *rstd, float *partial, float *work
) {
    gn_backward_body(x, dz, dx, hw, C, G, gamma, beta, silu, mean, rstd, partial, work);
}

#if CK_HAS_AVX2
CK_TARGET_AVX2 static void forward_avx2(
    const float *x, float *y, long hw, int C, int G, const float *gamma, const float *beta, float eps, int silu,
    float *mean, float *rstd, float *work, int xb, int yb
) {
    gn_forward_body(x, y, hw, C, G, gamma, beta, eps, silu, mean, rstd, work, xb, yb, 0);
}

CK_TARGET_AVX512 static void forward_avx512(
    const float *x, float *y, long hw, int C, int G, const float *gamma, const float *beta, float eps, int silu,
    float *mean, float *rstd, float *work, int xb, int yb
) {
    gn_forward_body(x, y, hw, C, G, gamma, beta, eps, silu, mean, rstd, work, xb, yb, 1);
}

CK_TARGET_AVX2 static void backward_avx2(
    const float *x, const float *dz, float *dx, long hw, int C, int G, const float *gamma, const float *beta, int silu,
    const float *mean, const float *rstd, float *partial, float *work
) {
    gn_backward_body(x, dz, dx, hw, C, G, gamma, beta, silu, mean, rstd, partial, work);
}
#endif

void ck_groupnorm_nhwc_forward(
    const float *x, float *y, long hw, int channels, int groups, const float *gamma, const float *beta, float eps,
    int silu, float *mean, float *rstd, float *work, int x_block, int y_block
) {
    CK_DISPATCH_WIDE(forward, (x, y, hw, channels, groups, gamma, beta, eps, silu, mean, rstd, work, x_block, y_block));
}

void ck_groupnorm_nhwc_backward(
    const float *x, const float *dz, float *dx, long hw, int channels, int groups, const float *gamma,
    const float *beta, int silu, const float *mean, const float *rstd, float *partial, float *work
) {
    CK_DISPATCH(backward, (x, dz, dx, hw, channels, groups, gamma, beta, silu, mean, rstd, partial, work));
}
