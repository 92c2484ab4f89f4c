// Not a stable API: the one header through which TensorCore/PNG.swift reaches libpng.
// Only libpng's simplified API (png_image_*) is used: the classic API reports errors with setjmp.
#include <png.h>
