// Elementwise kernels of the networks (GroupNorm + SiLU over NHWC activations), compiled twice:
// for the x86-64 baseline and for AVX2 + FMA (GroupNorm's forward also for AVX-512), picked once
// per process by CPUID (or by ONESTEP_SIMD=generic|avx2|avx512). Swift has no per-function target attributes; C does.
// Also the process's parallel loop on libgomp's team (ck_parallel_run).
#ifndef ONESTEP_CKERNELS_H
#define ONESTEP_CKERNELS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// 0: the portable path (SSE2 on x86-64); 1: AVX2 + FMA; 2: AVX-512 (F + VL) on top, where the
/// GroupNorm forward's normalise + SiLU pass runs 16 floats wide (the same bits as level 1).
typedef enum { ck_simd_generic = 0, ck_simd_avx2 = 1, ck_simd_avx512 = 2 } ck_simd_level;

/// The level in use: the CPU's best, unless ONESTEP_SIMD says otherwise (read once).
ck_simd_level ck_simd_current(void);
/// The best level this CPU runs.
ck_simd_level ck_simd_best(void);
/// Overrides the level (tests; a level the CPU lacks is clamped to its best). Not thread-safe
/// against running kernels.
void ck_simd_set(ck_simd_level level);
/// True when ONESTEP_SIMD named a valid level (ck_simd_current follows it).
int ck_simd_from_environment(void);

/// GroupNorm (+ SiLU when `silu`) of one sample, NHWC `[hw, C]`: y = [silu](gamma * (x - mean) *
/// rstd + beta) with G groups of C / G channels, biased variance, eps. Writes the group means
/// and rstds (`mean[G]`, `rstd[G]`). `work` holds 4 * C floats. `x_block`, `y_block`: the
/// channel blocks of x and y, C for NHWC or 16 for oneDNN's `aBcd16b` (`[C / 16, hw, 16]`, C a
/// multiple of 16); every pairing gives the same values, bit for bit.
void ck_groupnorm_nhwc_forward(
    const float *x, float *y, long hw, int channels, int groups, const float *gamma, const float *beta,
    float eps, int silu, float *mean, float *rstd, float *work, int x_block, int y_block);

/// The ResBlock's residual for one sample: y `[hw, C]` (NHWC) = (h + s) * scale, h in oneDNN's
/// `aBcd16b` (`[C / 16, hw, 16]`, C a multiple of 16) and s NHWC; also into `slice` (NHWC rows of
/// `slice_stride` floats, the channels at its start) when it is not NULL.
void ck_residual_blocked16(
    const float *h, const float *s, float *y, float *slice, long slice_stride, long hw, int channels, float scale);

/// y `[C / 16, hw, 16]` (oneDNN's `aBcd16b`, one sample) += t[c] for every pixel.
void ck_add_channel_bias_blocked16(float *y, const float *t, long hw, int channels);

/// The backward of the above for one sample: dx from dz (the gradient of y), the forward's x,
/// mean and rstd; the sample's parameter gradients as (dgamma, dbeta) pairs in `partial[2 * C]`.
/// `work` holds 6 * C floats.
void ck_groupnorm_nhwc_backward(
    const float *x, const float *dz, float *dx, long hw, int channels, int groups, const float *gamma,
    const float *beta, int silu, const float *mean, const float *rstd, float *partial, float *work);

/// One sample's convolution geometry (NHWC activations, square kernel).
typedef struct {
    int height, width, in_channels, out_channels, kernel, stride, padding, out_height, out_width;
} ck_conv_shape;

/// Direct convolution of one NHWC sample for layers with few output channels (below oneDNN's
/// channel block of 8): y `[OH, OW, OC]` = conv(x `[H, W, C]`) + bias (bias may be NULL).
/// `wt` holds the weights repacked as `[OC][k][k][C]`.
void ck_conv_nhwc_small_forward(const float *x, float *y, const ck_conv_shape *shape, const float *wt, const float *bias);
/// dx `[H, W, C]` (overwritten) of one sample from dy `[OH, OW, OC]`.
void ck_conv_nhwc_small_backward_data(const float *dy, float *dx, const ck_conv_shape *shape, const float *wt);
/// One sample's weight gradient `dwt[OC][k][k][C]` and bias gradient `db[OC]` (overwritten).
void ck_conv_nhwc_small_backward_weights(
    const float *x, const float *dy, const ck_conv_shape *shape, float *dwt, float *db);

/// Runs task(context, k, threads) for every k in 0..<threads on libgomp's thread team (the
/// OpenMP pool oneDNN's primitives run on, so the process keeps one pool); a team smaller than
/// `threads` runs several k per thread. Returns 0 without running anything when libgomp is not
/// loaded in the process (the caller then runs the tasks itself).
int ck_parallel_run(int threads, void *context, void (*task)(void *context, int k, int threads));

#ifdef __cplusplus
}
#endif

#endif
