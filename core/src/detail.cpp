#include "microexpr/detail.hpp"

#include <algorithm>
#include <cmath>

namespace microexpr::detail {

void box_mean(const float* src, int w, int h, int r, float* dst, float* acc) {
    // Vertical running sums per column, then a horizontal running window
    // whose interior part has no branches.
    std::fill(acc, acc + w, 0.0f);
    for (int y = 0; y <= std::min(r, h - 1); ++y) {
        const float* s = src + static_cast<std::ptrdiff_t>(y) * w;
        for (int x = 0; x < w; ++x) acc[x] += s[x];
    }
    const int left_end = std::min(r + 1, w);           // x < left_end: window clipped on the left
    const int right_start = std::max(w - r - 1, left_end);  // x >= right_start: clipped on the right
    for (int y = 0; y < h; ++y) {
        const int y_lo = std::max(y - r, 0), y_hi = std::min(y + r, h - 1);
        const float inv_rows = 1.0f / static_cast<float>(y_hi - y_lo + 1);
        float* d = dst + static_cast<std::ptrdiff_t>(y) * w;
        float s = 0.0f;
        for (int x = 0; x <= std::min(r, w - 1); ++x) s += acc[x];
        int x = 0;
        for (; x < left_end; ++x) {
            const int cols = std::min(x + r, w - 1) - std::max(x - r, 0) + 1;
            d[x] = s * (inv_rows / static_cast<float>(cols));
            if (x + r + 1 < w) s += acc[x + r + 1];
            if (x - r >= 0) s -= acc[x - r];
        }
        const float inv_full = inv_rows / static_cast<float>(2 * r + 1);
        for (; x < right_start; ++x) {
            d[x] = s * inv_full;
            s += acc[x + r + 1] - acc[x - r];
        }
        for (; x < w; ++x) {
            const int cols = std::min(x + r, w - 1) - std::max(x - r, 0) + 1;
            d[x] = s * (inv_rows / static_cast<float>(cols));
            if (x + r + 1 < w) s += acc[x + r + 1];
            if (x - r >= 0) s -= acc[x - r];
        }
        if (y + r + 1 < h) {
            const float* add = src + static_cast<std::ptrdiff_t>(y + r + 1) * w;
            for (int i = 0; i < w; ++i) acc[i] += add[i];
        }
        if (y - r >= 0) {
            const float* sub = src + static_cast<std::ptrdiff_t>(y - r) * w;
            for (int i = 0; i < w; ++i) acc[i] -= sub[i];
        }
    }
}

void warp_by_flow(const float* img, int w, int h, const float* u, const float* v, float* dst) {
    const float xmax = static_cast<float>(w - 1), ymax = static_cast<float>(h - 1);
    const int x0max = std::max(w - 2, 0), y0max = std::max(h - 2, 0);
    for (int y = 0; y < h; ++y) {
        for (int x = 0; x < w; ++x) {
            const std::ptrdiff_t i = static_cast<std::ptrdiff_t>(y) * w + x;
            const float xs = std::clamp(static_cast<float>(x) + u[i], 0.0f, xmax);
            const float ys = std::clamp(static_cast<float>(y) + v[i], 0.0f, ymax);
            const int x0 = std::min(static_cast<int>(xs), x0max);
            const int y0 = std::min(static_cast<int>(ys), y0max);
            const float fx = xs - static_cast<float>(x0), fy = ys - static_cast<float>(y0);
            const float* r0 = img + static_cast<std::ptrdiff_t>(y0) * w + x0;
            const float* r1 = r0 + (h > 1 ? w : 0);
            const int dx = w > 1 ? 1 : 0;
            const float top = r0[0] + fx * (r0[dx] - r0[0]);
            const float bot = r1[0] + fx * (r1[dx] - r1[0]);
            dst[i] = top + fy * (bot - top);
        }
    }
}

}  // namespace microexpr::detail
