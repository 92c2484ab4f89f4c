#include <stdlib.h>
#include <string.h>

#include "CKernels.h"
#include "simd.h"

static int level = -1;  // -1: not decided yet
static int fromEnvironment = 0;

ck_simd_level ck_simd_best(void) {
#if CK_HAS_AVX2
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")) return ck_simd_avx512;
        return ck_simd_avx2;
    }
#endif
    return ck_simd_generic;
}

static ck_simd_level clamp(ck_simd_level want) {
    ck_simd_level best = ck_simd_best();
    return want > best ? best : want;
}

ck_simd_level ck_simd_current(void) {
    int l = __atomic_load_n(&level, __ATOMIC_RELAXED);
    if (l >= 0) return (ck_simd_level)l;
    ck_simd_level chosen = ck_simd_best();
    const char *env = getenv("ONESTEP_SIMD");
    if (env && strcmp(env, "generic") == 0) {
        chosen = ck_simd_generic;
        __atomic_store_n(&fromEnvironment, 1, __ATOMIC_RELAXED);
    } else if (env && strcmp(env, "avx2") == 0) {
        chosen = clamp(ck_simd_avx2);
        __atomic_store_n(&fromEnvironment, 1, __ATOMIC_RELAXED);
    } else if (env && strcmp(env, "avx512") == 0) {
        chosen = clamp(ck_simd_avx512);
        __atomic_store_n(&fromEnvironment, 1, __ATOMIC_RELAXED);
    }
    __atomic_store_n(&level, (int)chosen, __ATOMIC_RELAXED);
    return chosen;
}

void ck_simd_set(ck_simd_level want) { __atomic_store_n(&level, (int)clamp(want), __ATOMIC_RELAXED); }

int ck_simd_from_environment(void) {
    (void)ck_simd_current();
    return __atomic_load_n(&fromEnvironment, __ATOMIC_RELAXED);
}
