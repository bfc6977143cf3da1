#include "microexpr/detail.hpp"

#include <algorithm>
#include <cstdint>
#include <cmath>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace microexpr::detail {

#if defined(__AVX2__)
namespace {

// first[i] = img[index[i]], second[i] = img[index[i] + 1].
inline void gather_pairs(const float* img, __m256i index, __m256& first, __m256& second) {
    const double* pairs = reinterpret_cast<const double*>(img);
    // The masked form with every lane on: GCC warns about the plain one's
    // undefined source register.
    const __m256d none = _mm256_setzero_pd();
    const __m256d all = _mm256_castsi256_pd(_mm256_set1_epi64x(-1));
    const __m256 lo = _mm256_castpd_ps(
        _mm256_mask_i32gather_pd(none, pairs, _mm256_castsi256_si128(index), all, 4));
    const __m256 hi = _mm256_castpd_ps(
        _mm256_mask_i32gather_pd(none, pairs, _mm256_extracti128_si256(index, 1), all, 4));
    // lo = f0 s0 f1 s1 | f2 s2 f3 s3, hi likewise for pixels 4 to 7.
    const __m256 f = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0));  // f0 f1 f4 f5 | f2 f3 f6 f7
    const __m256 s = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1));
    first = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(f), 0xD8));
    second = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(s), 0xD8));
}

}  // namespace
#endif

void warp_by_flow_row(const float* img, int w, int h, const float* ur, const float* vr, int y, float* d) {
    const float xmax = static_cast<float>(w - 1), ymax = static_cast<float>(h - 1);
    const int x0max = std::max(w - 2, 0), y0max = std::max(h - 2, 0);
    const int dx = w > 1 ? 1 : 0;
    const int dy = h > 1 ? w : 0;
    int x = 0;
#if defined(__AVX2__)
    // The vector path indexes pixels with 32-bit lanes.
    const bool small = static_cast<long long>(w) * h <= INT32_MAX;
    const __m256 zero = _mm256_setzero_ps(), vxmax = _mm256_set1_ps(xmax), vymax = _mm256_set1_ps(ymax);
    const __m256i vx0max = _mm256_set1_epi32(x0max), vy0max = _mm256_set1_epi32(y0max);
    const __m256i vw = _mm256_set1_epi32(w), vdy = _mm256_set1_epi32(dy);
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
        __m256 a, b, c, e;
        // Smooth flow often sends all eight pixels to one row and the same
        // column offset: then the four corners are plain contiguous loads.
        const __m256i shift = _mm256_sub_epi32(x0, _mm256_cvttps_epi32(px));
        const __m256i same = _mm256_and_si256(
            _mm256_cmpeq_epi32(shift, _mm256_permutevar8x32_epi32(shift, _mm256_setzero_si256())),
            _mm256_cmpeq_epi32(y0, _mm256_permutevar8x32_epi32(y0, _mm256_setzero_si256())));
        if (dx == 1 && _mm256_movemask_epi8(same) == -1) {
            const float* r0 = img + _mm256_cvtsi256_si32(i00);
            a = _mm256_loadu_ps(r0);
            b = _mm256_loadu_ps(r0 + 1);
            c = _mm256_loadu_ps(r0 + dy);
            e = _mm256_loadu_ps(r0 + dy + 1);
        } else if (dx == 1) {
            // Each 64-bit gather fetches a pixel and its right neighbour: half
            // as many gathered elements.
            gather_pairs(img, i00, a, b);
            gather_pairs(img, i10, c, e);
        } else {
            a = b = _mm256_i32gather_ps(img, i00, 4);
            c = e = _mm256_i32gather_ps(img, i10, 4);
        }
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

}  // namespace microexpr::detail
