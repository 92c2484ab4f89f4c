// GroupNorm (+ SiLU) over one NHWC sample: the bodies, inlined into one function per SIMD level
// (groupnorm.c). Vectors run along the channels of a pixel.
#ifndef ONESTEP_CKERNELS_GROUPNORM_BODY_H
#define ONESTEP_CKERNELS_GROUPNORM_BODY_H

#include "vector.h"

/// Where channel c of pixel p lives in a sample of `hw` pixels whose channels come in blocks of
/// `b` (`b` = C: NHWC `[hw, C]`; `b` = 16: oneDNN's `aBcd16b`, `[C / 16, hw, 16]`).
CK_INLINE long gn_at(long p, int c, long hw, int b) { return (long)(c / b) * hw * b + p * b + c % b; }

/// Per-channel sums of d and d^2, d = x - shift with shift the channel's first pixel (no
/// cancellation), for the channels c0 ..< c0 + m of the plane (channel blocks of `b`).
CK_INLINE void gn_channel_moments(
    const float *xs, long hw, int b, int c0, int m, float *s, float *q, float *a
) {
    const float *col = xs + gn_at(0, c0, hw, b);
    const v8 shift = v8_load_n(col, m);
    v8 s0 = 0, q0 = 0, s1 = 0, q1 = 0, s2 = 0, q2 = 0, s3 = 0, q3 = 0;
    long p = 0;
    if (m == 8) {
        for (; p + 4 <= hw; p += 4) {
            const float *r = col + p * b;
            v8 d0 = v8_load(r) - shift, d1 = v8_load(r + b) - shift;
            v8 d2 = v8_load(r + 2 * b) - shift, d3 = v8_load(r + 3 * b) - shift;
            s0 += d0; q0 += d0 * d0;
            s1 += d1; q1 += d1 * d1;
            s2 += d2; q2 += d2 * d2;
            s3 += d3; q3 += d3 * d3;
        }
    }
    for (; p < hw; p++) {
        v8 d = v8_load_n(col + p * b, m) - shift;
        s0 += d; q0 += d * d;
    }
    v8_store_n((s0 + s1) + (s2 + s3), s + c0, m);
    v8_store_n((q0 + q1) + (q2 + q3), q + c0, m);
    v8_store_n(shift, a + c0, m);
}

/// As `gn_channel_moments` for 16 channels c0 ..< c0 + 16 inside one channel block (the AVX-512
/// twin): each lane is one channel with the same four partial sums in the same order, so the same
/// bits as two 8-channel calls, with whole cache lines read in `aBcd16b`.
CK_INLINE void gn_channel_moments16(const float *xs, long hw, int b, int c0, float *s, float *q, float *a) {
    const float *col = xs + gn_at(0, c0, hw, b);
    const v16 shift = v16_load(col);
    v16 s0 = 0, q0 = 0, s1 = 0, q1 = 0, s2 = 0, q2 = 0, s3 = 0, q3 = 0;
    long p = 0;
    for (; p + 4 <= hw; p += 4) {
        const float *r = col + p * b;
        v16 d0 = v16_load(r) - shift, d1 = v16_load(r + b) - shift;
        v16 d2 = v16_load(r + 2 * b) - shift, d3 = v16_load(r + 3 * b) - shift;
        s0 += d0; q0 += d0 * d0;
        s1 += d1; q1 += d1 * d1;
        s2 += d2; q2 += d2 * d2;
        s3 += d3; q3 += d3 * d3;
    }
    for (; p < hw; p++) {
        v16 d = v16_load(col + p * b) - shift;
        s0 += d; q0 += d * d;
    }
    v16_store((s0 + s1) + (s2 + s3), s + c0);
    v16_store((q0 + q1) + (q2 + q3), q + c0);
    v16_store(shift, a + c0);
}

/// `wide` (a constant in each twin): the normalise + SiLU pass runs 16 channels at a time (the
/// AVX-512 twin); lane for lane the same operations, so the same bits. `xb`, `yb`: the channel
/// blocks of x and y (C or 16, `gn_at`); every layout pairing computes the same bits.
CK_INLINE void gn_forward_body(
    const float *xs, float *ys, long hw, int C, int G, const float *gamma, const float *beta, float eps, int silu,
    float *mean, float *rstd, float *ws, int xb, int yb, int wide
) {
    float *s = ws, *q = s + C, *a = q + C, *sh = a + C;
    const int cg = C / G;
    const double n = (double)cg * (double)hw, plane = (double)hw;
    for (int c0 = 0; c0 < C;) {
        if (wide && C - c0 >= 16 && c0 % xb + 16 <= xb) {
            gn_channel_moments16(xs, hw, xb, c0, s, q, a);
            c0 += 16;
        } else {
            gn_channel_moments(xs, hw, xb, c0, C - c0 < 8 ? C - c0 : 8, s, q, a);
            c0 += 8;
        }
    }
    // Group statistics in double from the shifted channel moments; then a = gamma * rstd and
    // sh = beta - mean * a per channel.
    for (int g = 0; g < G; g++) {
        double total = 0;
        for (int c = g * cg; c < (g + 1) * cg; c++) total += (double)s[c] + plane * (double)a[c];
        const double mu = total / n;
        double squares = 0;
        for (int c = g * cg; c < (g + 1) * cg; c++) {
            const double d = (double)a[c] - mu;
            squares += (double)q[c] + 2 * d * (double)s[c] + plane * d * d;
        }
        const double var = squares / n > 0 ? squares / n : 0;
        const float r = (float)(1 / __builtin_sqrt(var + (double)eps)), muF = (float)mu;
        mean[g] = muF;
        rstd[g] = r;
        for (int c = g * cg; c < (g + 1) * cg; c++) {
            a[c] = gamma[c] * r;
            sh[c] = beta[c] - muF * a[c];
        }
    }
    // The normalise pass walks each pixel's channels a block (the smaller of xb, yb) at a time.
    const int B = xb < yb ? xb : yb, full = B & ~7;
    for (long p = 0; p < hw; p++) {
        for (int k = 0; k < C; k += B) {
            const float *xr = xs + gn_at(p, k, hw, xb);
            float *yr = ys + gn_at(p, k, hw, yb);
            const float *ak = a + k, *shk = sh + k;
            int c = 0;
            if (wide && silu) {
                for (; c + 16 <= B; c += 16)
                    v16_store(v16_silu(v16_load(xr + c) * v16_load(ak + c) + v16_load(shk + c)), yr + c);
            } else if (wide) {
                for (; c + 16 <= B; c += 16)
                    v16_store(v16_load(xr + c) * v16_load(ak + c) + v16_load(shk + c), yr + c);
            }
            if (silu) {
                for (; c < full; c += 8)
                    v8_store(v8_silu(v8_load(xr + c) * v8_load(ak + c) + v8_load(shk + c)), yr + c);
            } else {
                for (; c < full; c += 8) v8_store(v8_load(xr + c) * v8_load(ak + c) + v8_load(shk + c), yr + c);
            }
            if (full < B) {
                const int m = B - full;
                v8 v = v8_load_n(xr + full, m) * v8_load_n(ak + full, m) + v8_load_n(shk + full, m);
                v8_store_n(silu ? v8_silu(v) : v, yr + full, m);
            }
        }
    }
}

CK_INLINE void gn_backward_body(
    const float *x, const float *dz, float *dx, long hw, int C, int G, const float *gamma, const float *beta, int silu,
    const float *mean, const float *rstd, float *partial, float *ws
) {
    const int cg = C / G;
    const float n = (float)cg * (float)hw;
    float *mu = ws, *r = mu + C, *dg = r + C, *db = dg + C, *s1 = db + C, *s2 = s1 + C;
    for (int c = 0; c < C; c++) {
        mu[c] = mean[c / cg];
        r[c] = rstd[c / cg];
    }
    // Pass 1: dxh = dy * gamma into dx; per-channel sums for the parameters and the groups.
    for (int c0 = 0; c0 < C; c0 += 8) {
        const int m = C - c0 < 8 ? C - c0 : 8;
        const v8 muv = v8_load_n(mu + c0, m), rv = v8_load_n(r + c0, m);
        const v8 gm = v8_load_n(gamma + c0, m), bt = v8_load_n(beta + c0, m);
        v8 g0 = 0, b0 = 0, t1 = 0, t2 = 0;
        for (long p = 0; p < hw; p++) {
            const long o = p * C + c0;
            const v8 xh = (v8_load_n(x + o, m) - muv) * rv;
            v8 dy = v8_load_n(dz + o, m);
            if (silu) dy = dy * v8_silu_grad(xh * gm + bt);
            g0 += dy * xh;
            b0 += dy;
            const v8 dxh = dy * gm;
            v8_store_n(dxh, dx + o, m);
            t1 += dxh;
            t2 += dxh * xh;
        }
        v8_store_n(g0, dg + c0, m);
        v8_store_n(b0, db + c0, m);
        v8_store_n(t1, s1 + c0, m);
        v8_store_n(t2, s2 + c0, m);
    }
    for (int c = 0; c < C; c++) {
        partial[2 * c] = dg[c];
        partial[2 * c + 1] = db[c];
    }
    // Group means of dxh and dxh * xh, spread back over the group's channels.
    for (int g = 0; g < G; g++) {
        float m1 = 0, m2 = 0;
        for (int c = g * cg; c < (g + 1) * cg; c++) {
            m1 += s1[c];
            m2 += s2[c];
        }
        for (int c = g * cg; c < (g + 1) * cg; c++) {
            s1[c] = m1 / n;
            s2[c] = m2 / n;
        }
    }
    // Pass 2: dx = rstd * (dxh - mean(dxh) - xh * mean(dxh * xh)).
    for (int c0 = 0; c0 < C; c0 += 8) {
        const int m = C - c0 < 8 ? C - c0 : 8;
        const v8 muv = v8_load_n(mu + c0, m), rv = v8_load_n(r + c0, m);
        const v8 m1 = v8_load_n(s1 + c0, m), m2 = v8_load_n(s2 + c0, m);
        for (long p = 0; p < hw; p++) {
            const long o = p * C + c0;
            const v8 xh = (v8_load_n(x + o, m) - muv) * rv;
            v8_store_n(rv * (v8_load_n(dx + o, m) - m1 - xh * m2), dx + o, m);
        }
    }
}

#endif
