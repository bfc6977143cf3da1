#include "microexpr/detail.hpp"

#include <algorithm>
#include <cstdint>
#include <cmath>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace microexpr::detail {

void box_mean(const float* src, int w, int h, int r, float* dst, float* scratch) {
    // Running column sums of the rows in the window, padded with r zeros on
    // each side, so every output is a plain sum of 2r + 1 entries: loops over
    // x with no carried dependency, which vectorise.
    float* acc = scratch;
    float* col = acc + r;
    float* inv_cols = acc + w + 2 * r;
    std::fill(acc, acc + w + 2 * r, 0.0f);
    for (int x = 0; x < w; ++x)
        inv_cols[x] = 1.0f / static_cast<float>(std::min(x + r, w - 1) - std::max(x - r, 0) + 1);
    for (int y = 0; y <= std::min(r, h - 1); ++y) {
        const float* s = src + static_cast<std::ptrdiff_t>(y) * w;
        for (int x = 0; x < w; ++x) col[x] += s[x];
    }
    for (int y = 0; y < h; ++y) {
        const int y_lo = std::max(y - r, 0), y_hi = std::min(y + r, h - 1);
        const float inv_rows = 1.0f / static_cast<float>(y_hi - y_lo + 1);
        float* d = dst + static_cast<std::ptrdiff_t>(y) * w;
        int x = 0;
#if defined(__AVX2__)
        // Eight outputs stay in a register while their window is summed.
        const __m256 row_scale = _mm256_set1_ps(inv_rows);
        for (; x + 8 <= w; x += 8) {
            __m256 sum = _mm256_loadu_ps(acc + x);
            for (int j = 1; j <= 2 * r; ++j) sum = _mm256_add_ps(sum, _mm256_loadu_ps(acc + x + j));
            const __m256 scale = _mm256_mul_ps(row_scale, _mm256_loadu_ps(inv_cols + x));
            _mm256_storeu_ps(d + x, _mm256_mul_ps(sum, scale));
        }
#endif
        for (; x < w; ++x) {
            float sum = acc[x];
            for (int j = 1; j <= 2 * r; ++j) sum += acc[x + j];
            d[x] = sum * (inv_rows * inv_cols[x]);
        }
        if (y + r + 1 < h) {
            const float* add = src + static_cast<std::ptrdiff_t>(y + r + 1) * w;
            for (int x = 0; x < w; ++x) col[x] += add[x];
        }
        if (y - r >= 0) {
            const float* sub = src + static_cast<std::ptrdiff_t>(y - r) * w;
            for (int x = 0; x < w; ++x) col[x] -= sub[x];
        }
    }
}

void warp_by_flow(const float* img, int w, int h, const float* u, const float* v, float* dst) {
    const float xmax = static_cast<float>(w - 1), ymax = static_cast<float>(h - 1);
    const int x0max = std::max(w - 2, 0), y0max = std::max(h - 2, 0);
    const int dx = w > 1 ? 1 : 0;
    const int dy = h > 1 ? w : 0;
    // The vector path indexes pixels with 32-bit lanes.
    const bool small = static_cast<long long>(w) * h <= INT32_MAX;
    for (int y = 0; y < h; ++y) {
        const std::ptrdiff_t row = static_cast<std::ptrdiff_t>(y) * w;
        const float* ur = u + row;
        const float* vr = v + row;
        float* d = dst + row;
        int x = 0;
#if defined(__AVX2__)
        const __m256 zero = _mm256_setzero_ps(), vxmax = _mm256_set1_ps(xmax), vymax = _mm256_set1_ps(ymax);
        const __m256i vx0max = _mm256_set1_epi32(x0max), vy0max = _mm256_set1_epi32(y0max);
        const __m256i vw = _mm256_set1_epi32(w), vdx = _mm256_set1_epi32(dx), vdy = _mm256_set1_epi32(dy);
        const __m256 vy = _mm256_set1_ps(static_cast<float>(y));
        const __m256 lane = _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7);
        for (; small && x + 8 <= w; x += 8) {
            const __m256 px = _mm256_add_ps(_mm256_set1_ps(static_cast<float>(x)), lane);
            const __m256 xs = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(px, _mm256_loadu_ps(ur + x)), zero), vxmax);
            const __m256 ys = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(vy, _mm256_loadu_ps(vr + x)), zero), vymax);
            const __m256i x0 = _mm256_min_epi32(_mm256_cvttps_epi32(xs), vx0max);
            const __m256i y0 = _mm256_min_epi32(_mm256_cvttps_epi32(ys), vy0max);
            const __m256 fx = _mm256_sub_ps(xs, _mm256_cvtepi32_ps(x0));
            const __m256 fy = _mm256_sub_ps(ys, _mm256_cvtepi32_ps(y0));
            const __m256i i00 = _mm256_add_epi32(_mm256_mullo_epi32(y0, vw), x0);
            const __m256i i10 = _mm256_add_epi32(i00, vdy);
            const __m256 a = _mm256_i32gather_ps(img, i00, 4);
            const __m256 b = _mm256_i32gather_ps(img, _mm256_add_epi32(i00, vdx), 4);
            const __m256 c = _mm256_i32gather_ps(img, i10, 4);
            const __m256 e = _mm256_i32gather_ps(img, _mm256_add_epi32(i10, vdx), 4);
            const __m256 top = _mm256_add_ps(a, _mm256_mul_ps(fx, _mm256_sub_ps(b, a)));
            const __m256 bot = _mm256_add_ps(c, _mm256_mul_ps(fx, _mm256_sub_ps(e, c)));
            _mm256_storeu_ps(d + x, _mm256_add_ps(top, _mm256_mul_ps(fy, _mm256_sub_ps(bot, top))));
        }
#endif
        for (; x < w; ++x) {
            const float xs = std::clamp(static_cast<float>(x) + ur[x], 0.0f, xmax);
            const float ys = std::clamp(static_cast<float>(y) + vr[x], 0.0f, ymax);
            const int x0 = std::min(static_cast<int>(xs), x0max);
            const int y0 = std::min(static_cast<int>(ys), y0max);
            const float fx = xs - static_cast<float>(x0), fy = ys - static_cast<float>(y0);
            const float* r0 = img + static_cast<std::ptrdiff_t>(y0) * w + x0;
            const float* r1 = r0 + dy;
            const float top = r0[0] + fx * (r0[dx] - r0[0]);
            const float bot = r1[0] + fx * (r1[dx] - r1[0]);
            d[x] = top + fy * (bot - top);
        }
    }
}

}  // namespace microexpr::detail
