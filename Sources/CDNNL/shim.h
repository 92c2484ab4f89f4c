// Not a stable API: the one header through which Sources/OneDNN reaches oneDNN 2.6's C API
// (Debian's libdnnl-dev, OpenMP CPU runtime). Keep every oneDNN call inside the OneDNN module:
// oneDNN 3.x removed the op descriptors used here.
#ifndef ONESTEP_CDNNL_SHIM_H
#define ONESTEP_CDNNL_SHIM_H
#include <stddef.h>
#include <stdio.h>
#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>

// libdnnl's OpenMP runtime (libgomp). omp_set_num_threads sets the calling thread's ICV only.
void omp_set_num_threads(int num_threads);
int omp_get_max_threads(void);

// Pointer-valued and function-like macros Swift cannot import.
static inline void *cdnnl_memory_allocate(void) { return DNNL_MEMORY_ALLOCATE; }
static inline void *cdnnl_memory_none(void) { return DNNL_MEMORY_NONE; }

static inline int cdnnl_arg_src(void) { return DNNL_ARG_SRC; }
static inline int cdnnl_arg_dst(void) { return DNNL_ARG_DST; }
static inline int cdnnl_arg_from(void) { return DNNL_ARG_FROM; }
static inline int cdnnl_arg_to(void) { return DNNL_ARG_TO; }
static inline int cdnnl_arg_weights(void) { return DNNL_ARG_WEIGHTS; }
static inline int cdnnl_arg_bias(void) { return DNNL_ARG_BIAS; }
static inline int cdnnl_arg_diff_src(void) { return DNNL_ARG_DIFF_SRC; }
static inline int cdnnl_arg_diff_dst(void) { return DNNL_ARG_DIFF_DST; }
static inline int cdnnl_arg_diff_weights(void) { return DNNL_ARG_DIFF_WEIGHTS; }
static inline int cdnnl_arg_diff_bias(void) { return DNNL_ARG_DIFF_BIAS; }
static inline int cdnnl_arg_scratchpad(void) { return DNNL_ARG_SCRATCHPAD; }

// Implementation name of a primitive descriptor (dnnl_query_impl_info_str), or NULL.
static inline const char *cdnnl_impl_info(const_dnnl_primitive_desc_t pd) {
    const char *s = NULL;
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &s) != dnnl_success) return NULL;
    return s;
}

// A 4-D f32 memory descriptor with the given tag (dnnl_format_tag_any lets a primitive choose).
static inline dnnl_status_t cdnnl_md_4d(dnnl_memory_desc_t *md, dnnl_dim_t d0, dnnl_dim_t d1, dnnl_dim_t d2,
                                        dnnl_dim_t d3, dnnl_format_tag_t tag) {
    dnnl_dims_t dims = {d0, d1, d2, d3};
    return dnnl_memory_desc_init_by_tag(md, 4, dims, dnnl_f32, tag);
}

static inline dnnl_status_t cdnnl_md_1d(dnnl_memory_desc_t *md, dnnl_dim_t d0, dnnl_format_tag_t tag) {
    dnnl_dims_t dims = {d0};
    return dnnl_memory_desc_init_by_tag(md, 1, dims, dnnl_f32, tag);
}

// Memory-descriptor equality as a bool (dnnl_memory_desc_equal returns int).
static inline int cdnnl_md_equal(const dnnl_memory_desc_t *a, const dnnl_memory_desc_t *b) {
    return dnnl_memory_desc_equal(a, b);
}

// A oneDNN-style format tag of a memory descriptor ("acdb", "Acdb8a", "ABcd8b8a"): outer dims by
// decreasing stride, upper case when also blocked, then the inner blocks outermost first.
static inline void cdnnl_md_format(const dnnl_memory_desc_t *md, char *out, size_t n) {
    if (n == 0) return;
    out[0] = 0;
    if (md->format_kind != dnnl_blocked) {
        snprintf(out, n, "%s", dnnl_fmt_kind2str(md->format_kind));
        return;
    }
    const dnnl_blocking_desc_t *b = &md->format_desc.blocking;
    int nd = md->ndims, order[DNNL_MAX_NDIMS], blocked[DNNL_MAX_NDIMS] = {0};
    for (int i = 0; i < nd; i++) order[i] = i;
    for (int i = 1; i < nd; i++) {  // insertion sort, stride descending, stable
        int d = order[i], j = i;
        while (j > 0 && b->strides[order[j - 1]] < b->strides[d]) { order[j] = order[j - 1]; j--; }
        order[j] = d;
    }
    for (int i = 0; i < b->inner_nblks; i++) blocked[b->inner_idxs[i]] = 1;
    size_t used = 0;
    for (int i = 0; i < nd && used + 1 < n; i++) out[used++] = (char)((blocked[order[i]] ? 'A' : 'a') + order[i]);
    out[used] = 0;
    for (int i = 0; i < b->inner_nblks && used + 1 < n; i++) {
        int w = snprintf(out + used, n - used, "%lld%c", (long long)b->inner_blks[i], 'a' + (int)b->inner_idxs[i]);
        if (w < 0) break;
        used += (size_t)w;
    }
}

#endif
