#include "CKernels.h"
#include "simd.h"
#include "smallconv_body.h"

static void forward_generic(const float *x, float *y, const ck_conv_shape *s, const float *wt, const float *bias) {
    sc_forward_body(x, y, s, wt, bias);
}
static void backward_data_generic(const float *dy, float *dx, const ck_conv_shape *s, const float *wt) {
    sc_backward_data_body(dy, dx, s, wt);
}
static void backward_weights_generic(const float *x, const float *dy, const ck_conv_shape *s, float *dwt, float *db) {
    sc_backward_weights_body(x, dy, s, dwt, db);
}

#if CK_HAS_AVX2
CK_TARGET_AVX2 static void forward_avx2(
    const float *x, float *y, const ck_conv_shape *s, const float *wt, const float *bias
) {
    sc_forward_body(x, y, s, wt, bias);
}
CK_TARGET_AVX2 static void backward_data_avx2(const float *dy, float *dx, const ck_conv_shape *s, const float *wt) {
    sc_backward_data_body(dy, dx, s, wt);
}
CK_TARGET_AVX2 static void backward_weights_avx2(
    const float *x, const float *dy, const ck_conv_shape *s, float *dwt, float *db
) {
    sc_backward_weights_body(x, dy, s, dwt, db);
}
#endif

void ck_conv_nhwc_small_forward(const float *x, float *y, const ck_conv_shape *shape, const float *wt, const float *bias) {
    CK_DISPATCH(forward, (x, y, shape, wt, bias));
}

void ck_conv_nhwc_small_backward_data(const float *dy, float *dx, const ck_conv_shape *shape, const float *wt) {
    CK_DISPATCH(backward_data, (dy, dx, shape, wt));
}

void ck_conv_nhwc_small_backward_weights(
    const float *x, const float *dy, const ck_conv_shape *shape, float *dwt, float *db
) {
    CK_DISPATCH(backward_weights, (x, dy, shape, dwt, db));
}
