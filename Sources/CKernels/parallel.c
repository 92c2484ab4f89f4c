// The elementwise kernels' parallel loop on libgomp's team: oneDNN's convolutions run on that
// OpenMP pool, so sharing it keeps one set of worker threads in the process (two pools busy at
// once, or one spinning while the other works, is what made 2-thread runs erratic). libgomp is
// loaded with libdnnl; its entry points are looked up at run time (GOMP_parallel is libgomp's
// ABI for `#pragma omp parallel`), so nothing here needs an OpenMP compiler or runtime at build time.
#include <dlfcn.h>

#include "CKernels.h"

typedef void (*gomp_parallel_fn)(void (*fn)(void *), void *data, unsigned num_threads, unsigned flags);
typedef int (*omp_int_fn)(void);

static gomp_parallel_fn gomp_parallel;
static omp_int_fn thread_num, num_threads;
static int resolved;  // 0 not yet, 1 found, -1 absent

static int resolve(void) {
    int r = __atomic_load_n(&resolved, __ATOMIC_ACQUIRE);
    if (r != 0) return r;
    gomp_parallel_fn p = (gomp_parallel_fn)dlsym(RTLD_DEFAULT, "GOMP_parallel");
    omp_int_fn t = (omp_int_fn)dlsym(RTLD_DEFAULT, "omp_get_thread_num");
    omp_int_fn n = (omp_int_fn)dlsym(RTLD_DEFAULT, "omp_get_num_threads");
    if (p && t && n) {
        gomp_parallel = p;
        thread_num = t;
        num_threads = n;
        r = 1;
    } else {
        r = -1;
    }
    __atomic_store_n(&resolved, r, __ATOMIC_RELEASE);
    return r;
}

struct job {
    void *context;
    void (*task)(void *, int, int);
    int threads;
};

static void trampoline(void *data) {
    const struct job *j = data;
    const int team = num_threads(), me = thread_num();
    for (int k = me; k < j->threads; k += team) j->task(j->context, k, j->threads);
}

int ck_parallel_run(int threads, void *context, void (*task)(void *context, int k, int threads)) {
    if (resolve() < 0) return 0;
    struct job j = {context, task, threads};
    gomp_parallel(trampoline, &j, (unsigned)threads, 0);
    return 1;
}
