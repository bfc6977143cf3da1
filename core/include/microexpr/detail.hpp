// Building blocks shared by the core's kernels (not part of the public API).
#pragma once

#include <cstddef>

namespace microexpr::detail {

// Row y of dst(x, y) = img(x + u, y + v), bilinear, sample positions clamped
// to the image: ur, vr and d point at that row's flow and output.
void warp_by_flow_row(const float* img, int w, int h, const float* ur, const float* vr, int y, float* d);

}  // namespace microexpr::detail
