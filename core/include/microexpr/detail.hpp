// Building blocks shared by the core's kernels (not part of the public API).
#pragma once

#include <cstddef>

namespace microexpr::detail {

// Mean over the (2r+1)^2 box clipped to the image (each pixel divides by the
// number of pixels actually inside). scratch: 2 * (w + r) floats.
void box_mean(const float* src, int w, int h, int r, float* dst, float* scratch);

// dst(x, y) = img(x + u, y + v), bilinear, sample positions clamped to the image.
void warp_by_flow(const float* img, int w, int h, const float* u, const float* v, float* dst);

}  // namespace microexpr::detail
