// Direct convolution over NHWC activations for layers with few output channels (oneDNN's AVX2
// kernels pad the output channels to a block of 8, so a 32 -> 1 convolution ran at a tenth of
// their speed): vectors along the input channels of a pixel, weights repacked as [OC][k][k][C].
#ifndef ONESTEP_CKERNELS_SMALLCONV_BODY_H
#define ONESTEP_CKERNELS_SMALLCONV_BODY_H

#include "CKernels.h"
#include "vector.h"

/// Sum over c < C of a[c] * b[c] (vector partial sums, then a fixed-order reduction).
CK_INLINE float sc_dot(const float *a, const float *b, int C) {
    v8 s0 = 0, s1 = 0;
    int c = 0;
    for (; c + 16 <= C; c += 16) {
        s0 += v8_load(a + c) * v8_load(b + c);
        s1 += v8_load(a + c + 8) * v8_load(b + c + 8);
    }
    for (; c < C; c += 8) {
        const int m = C - c < 8 ? C - c : 8;
        s0 += v8_load_n(a + c, m) * v8_load_n(b + c, m);
    }
    return v8_sum(s0 + s1);
}

/// y[i, 0:C] += g * w[0:C].
CK_INLINE void sc_axpy(float g, const float *w, float *y, int C) {
    int c = 0;
    for (; c + 8 <= C; c += 8) v8_store(v8_load(y + c) + g * v8_load(w + c), y + c);
    for (; c < C; c++) y[c] += g * w[c];
}

/// The kernel offsets t in [lo, hi) whose input row o * stride + t - padding lies in [0, size).
CK_INLINE void sc_taps(int o, const ck_conv_shape *s, int size, int *lo, int *hi) {
    const int first = o * s->stride - s->padding;
    *lo = first < 0 ? -first : 0;
    *hi = size - first < s->kernel ? size - first : s->kernel;
}

CK_INLINE void sc_forward_body(const float *x, float *y, const ck_conv_shape *s, const float *wt, const float *bias) {
    const int C = s->in_channels, OC = s->out_channels, k = s->kernel;
    for (int oy = 0; oy < s->out_height; oy++) {
        for (int ox = 0; ox < s->out_width; ox++) {
            float *yp = y + ((long)oy * s->out_width + ox) * OC;
            int ky0, ky1, kx0, kx1;
            sc_taps(oy, s, s->height, &ky0, &ky1);
            sc_taps(ox, s, s->width, &kx0, &kx1);
            for (int o = 0; o < OC; o++) {
                float acc = 0;
                for (int ky = ky0; ky < ky1; ky++) {
                    const int iy = oy * s->stride + ky - s->padding;
                    for (int kx = kx0; kx < kx1; kx++) {
                        const int ix = ox * s->stride + kx - s->padding;
                        acc += sc_dot(x + ((long)iy * s->width + ix) * C, wt + ((long)(o * k + ky) * k + kx) * C, C);
                    }
                }
                yp[o] = acc + (bias ? bias[o] : 0);
            }
        }
    }
}

CK_INLINE void sc_backward_data_body(const float *dy, float *dx, const ck_conv_shape *s, const float *wt) {
    const int C = s->in_channels, OC = s->out_channels, k = s->kernel;
    for (long i = 0; i < (long)s->height * s->width * C; i++) dx[i] = 0;
    for (int oy = 0; oy < s->out_height; oy++) {
        for (int ox = 0; ox < s->out_width; ox++) {
            const float *g = dy + ((long)oy * s->out_width + ox) * OC;
            int ky0, ky1, kx0, kx1;
            sc_taps(oy, s, s->height, &ky0, &ky1);
            sc_taps(ox, s, s->width, &kx0, &kx1);
            for (int o = 0; o < OC; o++) {
                for (int ky = ky0; ky < ky1; ky++) {
                    const int iy = oy * s->stride + ky - s->padding;
                    for (int kx = kx0; kx < kx1; kx++) {
                        const int ix = ox * s->stride + kx - s->padding;
                        sc_axpy(g[o], wt + ((long)(o * k + ky) * k + kx) * C, dx + ((long)iy * s->width + ix) * C, C);
                    }
                }
            }
        }
    }
}

/// dwt[o][ky][kx][0:C] and db[o] of one sample (overwritten).
CK_INLINE void sc_backward_weights_body(
    const float *x, const float *dy, const ck_conv_shape *s, float *dwt, float *db
) {
    const int C = s->in_channels, OC = s->out_channels, k = s->kernel;
    for (long i = 0; i < (long)OC * k * k * C; i++) dwt[i] = 0;
    for (int o = 0; o < OC; o++) db[o] = 0;
    for (int oy = 0; oy < s->out_height; oy++) {
        for (int ox = 0; ox < s->out_width; ox++) {
            const float *g = dy + ((long)oy * s->out_width + ox) * OC;
            int ky0, ky1, kx0, kx1;
            sc_taps(oy, s, s->height, &ky0, &ky1);
            sc_taps(ox, s, s->width, &kx0, &kx1);
            for (int o = 0; o < OC; o++) {
                db[o] += g[o];
                for (int ky = ky0; ky < ky1; ky++) {
                    const int iy = oy * s->stride + ky - s->padding;
                    for (int kx = kx0; kx < kx1; kx++) {
                        const int ix = ox * s->stride + kx - s->padding;
                        sc_axpy(g[o], x + ((long)iy * s->width + ix) * C, dwt + ((long)(o * k + ky) * k + kx) * C, C);
                    }
                }
            }
        }
    }
}

#endif
