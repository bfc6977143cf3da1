// Face alignment: least-squares similarity and bilinear affine warping.
#include <cmath>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "microexpr/core.hpp"

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
        for (int x = 0; x < dw; ++x) {
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
