// Not a stable API: the one header through which TensorCore/BLAS.swift reaches OpenBLAS.
#include <cblas.h>
// Declared by OpenBLAS's cblas.h; repeated here so the dependency is explicit.
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
char *openblas_get_config(void);
char *openblas_get_corename(void);
// LAPACK (Fortran ABI, shipped inside libopenblas): symmetric eigendecomposition in double precision.
// The trailing size_t arguments are gfortran's hidden lengths of the two character arguments.
void dsyev_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w,
            double *work, const int *lwork, int *info, size_t jobz_len, size_t uplo_len);
