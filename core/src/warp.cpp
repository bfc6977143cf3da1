// Face alignment: least-squares similarity and bilinear affine warping.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "microexpr/core.hpp"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

namespace microexpr {

Affine estimate_similarity(const double* src, const double* dst, std::size_t n) {
    if (!src || !dst) throw std::invalid_argument("null point array");
    if (n < 2) throw std::invalid_argument("need at least 2 point pairs, got " + std::to_string(n));
    double msx = 0, msy = 0, mdx = 0, mdy = 0;
    for (std::size_t i = 0; i < n; ++i) {
        if (!std::isfinite(src[2 * i]) || !std::isfinite(src[2 * i + 1]) ||
            !std::isfinite(dst[2 * i]) || !std::isfinite(dst[2 * i + 1]))
            throw std::invalid_argument("point " + std::to_string(i) + " is not finite");
        msx += src[2 * i]; msy += src[2 * i + 1];
        mdx += dst[2 * i]; mdy += dst[2 * i + 1];
    }
    msx /= n; msy /= n; mdx /= n; mdy /= n;
    // Closed form of Umeyama's estimate in 2-D: the rotation-scale is the
    // complex number a + ib minimising sum |(a + ib) s_i - d_i|^2.
    double ss = 0, a = 0, b = 0;
    for (std::size_t i = 0; i < n; ++i) {
        const double sx = src[2 * i] - msx, sy = src[2 * i + 1] - msy;
        const double dx = dst[2 * i] - mdx, dy = dst[2 * i + 1] - mdy;
        ss += sx * sx + sy * sy;
        a += sx * dx + sy * dy;
        b += sx * dy - sy * dx;
    }
    if (!(ss > 1e-12)) throw std::invalid_argument("source points are all coincident");
    a /= ss;
    b /= ss;
    return {a, -b, mdx - (a * msx - b * msy), b, a, mdy - (b * msx + a * msy)};
}

namespace {

Affine invert(const Affine& m) {
    const double det = m[0] * m[4] - m[1] * m[3];
    if (!(std::fabs(det) > 1e-12) || !std::isfinite(det))
        throw std::invalid_argument("affine matrix is singular or not finite");
    const double i00 = m[4] / det, i01 = -m[1] / det, i10 = -m[3] / det, i11 = m[0] / det;
    return {i00, i01, -(i00 * m[2] + i01 * m[5]), i10, i11, -(i10 * m[2] + i11 * m[5])};
}

inline float store(float v, float*) { return v; }
inline std::uint8_t store(float v, std::uint8_t*) {
    const float c = v < 0.0f ? 0.0f : (v > 255.0f ? 255.0f : v);
    return static_cast<std::uint8_t>(c + 0.5f);
}

#if defined(__AVX2__) && defined(__FMA__)
// Four outputs at a time while all four sample strictly inside the image
// (with two spare columns: one 32-bit load per row fetches a pixel and its
// right neighbour). Returns the first x it did not write.
int warp_row_u8(const std::uint8_t* src, int sw, int sh, std::ptrdiff_t ss, const Affine& inv, int y,
                std::uint8_t* d, int dw) {
    if (sw < 4 || sh < 2 || ss * sh > INT32_MAX) return 0;
    const __m256d a0 = _mm256_set1_pd(inv[0]), a3 = _mm256_set1_pd(inv[3]);
    const __m256d by = _mm256_set1_pd(inv[1] * y), cy = _mm256_set1_pd(inv[4] * y);
    const __m256d bx = _mm256_set1_pd(inv[2]), ey = _mm256_set1_pd(inv[5]);
    const __m256d zero = _mm256_setzero_pd();
    const __m256d xlim = _mm256_set1_pd(sw - 4), ylim = _mm256_set1_pd(sh - 2);
    const __m128i stride = _mm_set1_epi32(static_cast<int>(ss)), low = _mm_set1_epi32(0xFF);
    const __m128 half = _mm_set1_ps(0.5f), top_value = _mm_set1_ps(255.0f);
    const int* base = reinterpret_cast<const int*>(src);
    int x = 0;
    for (; x + 4 <= dw; x += 4) {
        const __m256d xs = _mm256_setr_pd(x, x + 1, x + 2, x + 3);
        const __m256d sx = _mm256_add_pd(_mm256_add_pd(_mm256_mul_pd(a0, xs), by), bx);
        const __m256d sy = _mm256_add_pd(_mm256_add_pd(_mm256_mul_pd(a3, xs), cy), ey);
        const __m256d fx0 = _mm256_floor_pd(sx), fy0 = _mm256_floor_pd(sy);
        const __m256d inside = _mm256_and_pd(
            _mm256_and_pd(_mm256_cmp_pd(fx0, zero, _CMP_GE_OQ), _mm256_cmp_pd(fx0, xlim, _CMP_LE_OQ)),
            _mm256_and_pd(_mm256_cmp_pd(fy0, zero, _CMP_GE_OQ), _mm256_cmp_pd(fy0, ylim, _CMP_LE_OQ)));
        if (_mm256_movemask_pd(inside) != 0xF) break;
        const __m128 fx = _mm256_cvtpd_ps(_mm256_sub_pd(sx, fx0));
        const __m128 fy = _mm256_cvtpd_ps(_mm256_sub_pd(sy, fy0));
        const __m128i i0 = _mm_add_epi32(_mm_mullo_epi32(_mm256_cvttpd_epi32(fy0), stride),
                                         _mm256_cvttpd_epi32(fx0));
        // Bytes 0 and 1 of each gathered word: the pixel and its right neighbour.
        const __m128i r0 = _mm_i32gather_epi32(base, i0, 1);
        const __m128i r1 = _mm_i32gather_epi32(base, _mm_add_epi32(i0, stride), 1);
        const __m128 a = _mm_cvtepi32_ps(_mm_and_si128(r0, low));
        const __m128 b = _mm_cvtepi32_ps(_mm_and_si128(_mm_srli_epi32(r0, 8), low));
        const __m128 c = _mm_cvtepi32_ps(_mm_and_si128(r1, low));
        const __m128 e = _mm_cvtepi32_ps(_mm_and_si128(_mm_srli_epi32(r1, 8), low));
        const __m128 top = _mm_fmadd_ps(fx, _mm_sub_ps(b, a), a);
        const __m128 bot = _mm_fmadd_ps(fx, _mm_sub_ps(e, c), c);
        const __m128 v = _mm_fmadd_ps(fy, _mm_sub_ps(bot, top), top);
        const __m128 clamped = _mm_min_ps(_mm_max_ps(v, _mm_setzero_ps()), top_value);
        const __m128i q = _mm_cvttps_epi32(_mm_add_ps(clamped, half));
        const __m128i bytes = _mm_packus_epi16(_mm_packs_epi32(q, q), q);
        const int packed = _mm_cvtsi128_si32(bytes);
        std::memcpy(d + x, &packed, 4);
    }
    return x;
}
#endif

template <typename T>
void warp_impl(const T* src, int sw, int sh, std::ptrdiff_t ss, const Affine& m, T* dst, int dw,
               int dh, std::ptrdiff_t ds, Border border, double fill) {
    if (!src || !dst) throw std::invalid_argument("null image pointer");
    if (sw < 1 || sh < 1) throw std::invalid_argument("source image is empty");
    if (dw < 1 || dh < 1) throw std::invalid_argument("output size must be positive");
    if (ss < sw || ds < dw) throw std::invalid_argument("row stride smaller than the width");
    for (double c : m)
        if (!std::isfinite(c)) throw std::invalid_argument("affine matrix is not finite");
    if (std::is_same_v<T, std::uint8_t> && !std::isfinite(fill))
        throw std::invalid_argument("fill must be finite for a uint8 image");
    const Affine inv = invert(m);
    const float fillv = static_cast<float>(fill);
    auto tap = [&](long x, long y) -> float {
        if (x >= 0 && x < sw && y >= 0 && y < sh) return static_cast<float>(src[y * ss + x]);
        if (border == Border::Constant) return fillv;
        x = x < 0 ? 0 : (x >= sw ? sw - 1 : x);
        y = y < 0 ? 0 : (y >= sh ? sh - 1 : y);
        return static_cast<float>(src[y * ss + x]);
    };
    for (int y = 0; y < dh; ++y) {
        T* d = dst + y * ds;
        int x = 0;
#if defined(__AVX2__) && defined(__FMA__)
        if constexpr (std::is_same_v<T, std::uint8_t>) x = warp_row_u8(src, sw, sh, ss, inv, y, d, dw);
#endif
        for (; x < dw; ++x) {
            const double sx = inv[0] * x + inv[1] * y + inv[2];
            const double sy = inv[3] * x + inv[4] * y + inv[5];
            // Far outside: avoid integer overflow, the result is pure border.
            if (!(std::fabs(sx) < 1e9 && std::fabs(sy) < 1e9)) {
                // Replicate: the nearest edge pixel of that row or column.
                const long cx = sx < 0 ? 0 : (sx >= sw - 1 ? sw - 1 : static_cast<long>(sx));
                const long cy = sy < 0 ? 0 : (sy >= sh - 1 ? sh - 1 : static_cast<long>(sy));
                d[x] = store(border == Border::Constant ? fillv : static_cast<float>(src[cy * ss + cx]), d);
                continue;
            }
            const double fx0 = std::floor(sx), fy0 = std::floor(sy);
            const long x0 = static_cast<long>(fx0), y0 = static_cast<long>(fy0);
            const float fx = static_cast<float>(sx - fx0), fy = static_cast<float>(sy - fy0);
            float v;
            if (x0 >= 0 && y0 >= 0 && x0 + 1 < sw && y0 + 1 < sh) {
                const T* r0 = src + y0 * ss + x0;
                const T* r1 = r0 + ss;
                const float top = r0[0] + fx * (static_cast<float>(r0[1]) - r0[0]);
                const float bot = r1[0] + fx * (static_cast<float>(r1[1]) - r1[0]);
                v = top + fy * (bot - top);
            } else {
                const float a = tap(x0, y0), b = tap(x0 + 1, y0);
                const float c = tap(x0, y0 + 1), e = tap(x0 + 1, y0 + 1);
                const float top = a + fx * (b - a), bot = c + fx * (e - c);
                v = top + fy * (bot - top);
            }
            d[x] = store(v, d);
        }
    }
}

}  // namespace

void warp_affine(const std::uint8_t* src, int sw, int sh, std::ptrdiff_t ss, const Affine& m,
                 std::uint8_t* dst, int dw, int dh, std::ptrdiff_t ds, Border border,
                 double fill) {
    warp_impl(src, sw, sh, ss, m, dst, dw, dh, ds, border, fill);
}

void warp_affine(const float* src, int sw, int sh, std::ptrdiff_t ss, const Affine& m,
                 float* dst, int dw, int dh, std::ptrdiff_t ds, Border border, double fill) {
    warp_impl(src, sw, sh, ss, m, dst, dw, dh, ds, border, fill);
}

const char* version() { return MICROEXPR_VERSION; }

}  // namespace microexpr
