// Not a stable API: the one header through which TensorCore/BLAS.swift reaches OpenBLAS.
#include <cblas.h>
// Declared by OpenBLAS's cblas.h; repeated here so the dependency is explicit.
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
