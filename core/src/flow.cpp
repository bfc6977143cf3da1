// Dense optical flow for aligned face crops.
//
// Combined local-global flow (Bruhn et al. 2005): a structure tensor summed
// over a small box (the Lucas-Kanade data term) plus a first-order smoothness
// term (Horn-Schunck), solved coarse to fine. At each level the linearisation
// uses the gradient of the first image (inverse compositional, as DIS does),
// so the per-pixel 2x2 system is inverted once per level and each warp only
// re-samples the second image. Red-black Gauss-Seidel sweeps keep the result
// independent of any threading of the loops; at the finest level an optional
// two-grid correction removes the smooth error that sweeps reduce slowly.
// The reference implementation in microexpr/reference.py follows this file
// step by step.
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <type_traits>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "microexpr/core.hpp"
#include "microexpr/detail.hpp"

namespace microexpr {

namespace {

constexpr int kBlockPixels = 8;  // floats per AVX2 register

template <typename T>
void grow(std::vector<T>& v, std::size_t n) {
    if (v.size() < n) v.resize(n);
}

// 2x2 mean downsampling; the coarse image is floor(w/2) x floor(h/2).
void downsample(const float* src, int w, float* dst, int cw, int ch) {
    for (int y = 0; y < ch; ++y) {
        const float* r0 = src + static_cast<std::ptrdiff_t>(2 * y) * w;
        const float* r1 = r0 + w;
        float* d = dst + static_cast<std::ptrdiff_t>(y) * cw;
        int x = 0;
#if defined(__AVX2__)
        // hadd sums pairs within 128-bit lanes: p0 p1 p4 p5 | p2 p3 p6 p7.
        const __m256 quarter = _mm256_set1_ps(0.25f);
        for (; x + kBlockPixels <= cw; x += kBlockPixels) {
            const __m256 top = _mm256_hadd_ps(_mm256_loadu_ps(r0 + 2 * x), _mm256_loadu_ps(r0 + 2 * x + kBlockPixels));
            const __m256 bottom = _mm256_hadd_ps(_mm256_loadu_ps(r1 + 2 * x), _mm256_loadu_ps(r1 + 2 * x + kBlockPixels));
            const __m256 sum = _mm256_castpd_ps(
                _mm256_permute4x64_pd(_mm256_castps_pd(_mm256_add_ps(top, bottom)), 0xD8));
            _mm256_storeu_ps(d + x, _mm256_mul_ps(quarter, sum));
        }
#endif
        for (; x < cw; ++x)
            d[x] = 0.25f * ((r0[2 * x] + r0[2 * x + 1]) + (r1[2 * x] + r1[2 * x + 1]));
    }
}

// Row y of the [1 2 1] / 4 smoothing along x, borders replicated.
void smooth_row(const float* s, int w, float* t) {
    t[0] = 0.25f * (3.0f * s[0] + s[1]);
    for (int x = 1; x < w - 1; ++x) t[x] = 0.25f * ((s[x - 1] + s[x + 1]) + 2.0f * s[x]);
    t[w - 1] = 0.25f * (3.0f * s[w - 1] + s[w - 2]);
}

// Row y of the central differences of s inside, one-sided at the borders
// (numpy.gradient), into the rows gx and gy.
void gradient_row(const float* s, int w, int h, int y, float* gx, float* gy) {
    const float* r = s + static_cast<std::ptrdiff_t>(y) * w;
    gx[0] = r[1] - r[0];
    for (int x = 1; x < w - 1; ++x) gx[x] = 0.5f * (r[x + 1] - r[x - 1]);
    gx[w - 1] = r[w - 1] - r[w - 2];
    const float* up = s + static_cast<std::ptrdiff_t>(std::max(y - 1, 0)) * w;
    const float* dn = s + static_cast<std::ptrdiff_t>(std::min(y + 1, h - 1)) * w;
    const float scale = (y == 0 || y == h - 1) ? 1.0f : 0.5f;
    for (int x = 0; x < w; ++x) gy[x] = scale * (dn[x] - up[x]);
}

// Separable [1 2 1] / 4 smoothing (borders replicated) of both images in one
// pass down the rows: the rows smoothed along x wait in a ring of three per
// image (6 w floats). The gradient of the smoothed first image is taken a row
// at a time where it is used. w >= 2.
void smooth_pair(const float* prev, const float* next, int w, int h, float* prev_s, float* next_s,
                 float* ring) {
    auto along_x = [&](int y) {
        const std::ptrdiff_t at = static_cast<std::ptrdiff_t>(y) * w;
        float* slot = ring + static_cast<std::ptrdiff_t>(y % 3) * 2 * w;
        smooth_row(prev + at, w, slot);
        smooth_row(next + at, w, slot + w);
    };
    along_x(0);
    for (int y = 0; y < h; ++y) {
        if (y + 1 < h) along_x(y + 1);
        const float* up = ring + static_cast<std::ptrdiff_t>(std::max(y - 1, 0) % 3) * 2 * w;
        const float* mid = ring + static_cast<std::ptrdiff_t>(y % 3) * 2 * w;
        const float* dn = ring + static_cast<std::ptrdiff_t>(std::min(y + 1, h - 1) % 3) * 2 * w;
        float* dp = prev_s + static_cast<std::ptrdiff_t>(y) * w;
        float* dq = next_s + static_cast<std::ptrdiff_t>(y) * w;
        for (int x = 0; x < w; ++x) dp[x] = 0.25f * ((up[x] + dn[x]) + 2.0f * mid[x]);
        for (int x = 0; x < w; ++x) dq[x] = 0.25f * ((up[w + x] + dn[w + x]) + 2.0f * mid[w + x]);
    }
}

// Bilinear upsampling of a flow component by `scale`, values multiplied by it.
// Source positions and weights per column are computed once per call.
void upsample(const float* src, int sw, int sh, float* dst, int dw, int dh, float scale,
              std::vector<int>& cols, std::vector<float>& weights) {
    cols.resize(static_cast<std::size_t>(dw));
    weights.resize(static_cast<std::size_t>(dw));
    for (int x = 0; x < dw; ++x) {
        float xs = std::clamp((x + 0.5f) / scale - 0.5f, 0.0f, static_cast<float>(sw - 1));
        int x0 = std::min(static_cast<int>(xs), std::max(sw - 2, 0));
        cols[x] = x0;
        weights[x] = xs - x0;
    }
    const int dx = sw > 1 ? 1 : 0;
    for (int y = 0; y < dh; ++y) {
        float ys = std::clamp((y + 0.5f) / scale - 0.5f, 0.0f, static_cast<float>(sh - 1));
        int y0 = std::min(static_cast<int>(ys), std::max(sh - 2, 0));
        float fy = ys - y0;
        int y1 = std::min(y0 + 1, sh - 1);
        const float* r0 = src + static_cast<std::ptrdiff_t>(y0) * sw;
        const float* r1 = src + static_cast<std::ptrdiff_t>(y1) * sw;
        float* d = dst + static_cast<std::ptrdiff_t>(y) * dw;
        for (int x = 0; x < dw; ++x) {
            const int x0 = cols[x];
            const float fx = weights[x];
            const float top = r0[x0] + fx * (r0[x0 + dx] - r0[x0]);
            const float bot = r1[x0] + fx * (r1[x0 + dx] - r1[x0]);
            d[x] = scale * (top + fy * (bot - top));
        }
    }
}

// Exact 2x upsampling: output pixels sit a quarter of a coarse pixel from
// their nearest coarse sample, so weights are 3/4 and 1/4 (edges clamp).
void upsample2(const float* src, int sw, int sh, float* dst, float* row) {
    const int dw = 2 * sw;
    for (int y = 0; y < 2 * sh; ++y) {
        const int k = y >> 1;
        const int other = (y & 1) ? std::min(k + 1, sh - 1) : std::max(k - 1, 0);
        const float* r0 = src + static_cast<std::ptrdiff_t>(k) * sw;
        const float* r1 = src + static_cast<std::ptrdiff_t>(other) * sw;
        for (int x = 0; x < sw; ++x) row[x] = 2.0f * (0.75f * r0[x] + 0.25f * r1[x]);
        float* d = dst + static_cast<std::ptrdiff_t>(y) * dw;
        d[0] = row[0];
        int x = 0;
#if defined(__AVX2__)
        // Eight source columns give output pixels 2x + 1 and 2x + 2 of each.
        const __m256 near = _mm256_set1_ps(0.75f), far = _mm256_set1_ps(0.25f);
        for (; x + kBlockPixels <= sw - 1; x += kBlockPixels) {
            const __m256 a = _mm256_loadu_ps(row + x), b = _mm256_loadu_ps(row + x + 1);
            const __m256 odd = _mm256_fmadd_ps(near, a, _mm256_mul_ps(far, b));
            const __m256 even = _mm256_fmadd_ps(far, a, _mm256_mul_ps(near, b));
            const __m256 lo = _mm256_unpacklo_ps(odd, even);  // o0 e0 o1 e1 | o4 e4 o5 e5
            const __m256 hi = _mm256_unpackhi_ps(odd, even);  // o2 e2 o3 e3 | o6 e6 o7 e7
            _mm256_storeu_ps(d + 2 * x + 1, _mm256_permute2f128_ps(lo, hi, 0x20));
            _mm256_storeu_ps(d + 2 * x + 1 + kBlockPixels, _mm256_permute2f128_ps(lo, hi, 0x31));
        }
#endif
        for (; x < sw - 1; ++x) {
            d[2 * x + 1] = 0.75f * row[x] + 0.25f * row[x + 1];
            d[2 * x + 2] = 0.25f * row[x] + 0.75f * row[x + 1];
        }
        d[dw - 1] = row[sw - 1];
    }
}

// upsample2 of u and v written straight into the interleaved (dx, dy) output.
void upsample2_interleaved(const float* u, const float* v, int sw, int sh, float* flow,
                           float* row_u, float* row_v) {
    const int dw = 2 * sw;
    for (int y = 0; y < 2 * sh; ++y) {
        const int k = y >> 1;
        const int other = (y & 1) ? std::min(k + 1, sh - 1) : std::max(k - 1, 0);
        const std::ptrdiff_t r0 = static_cast<std::ptrdiff_t>(k) * sw;
        const std::ptrdiff_t r1 = static_cast<std::ptrdiff_t>(other) * sw;
        for (int x = 0; x < sw; ++x) {
            row_u[x] = 2.0f * (0.75f * u[r0 + x] + 0.25f * u[r1 + x]);
            row_v[x] = 2.0f * (0.75f * v[r0 + x] + 0.25f * v[r1 + x]);
        }
        float* d = flow + static_cast<std::ptrdiff_t>(y) * dw * 2;
        d[0] = row_u[0];
        d[1] = row_v[0];
        int x = 0;
#if defined(__AVX2__)
        // Eight source columns give output pixels 2x + 1 and 2x + 2 of each.
        const __m256 near = _mm256_set1_ps(0.75f), far = _mm256_set1_ps(0.25f);
        for (; x + kBlockPixels <= sw - 1; x += kBlockPixels) {
            const __m256 au = _mm256_loadu_ps(row_u + x), bu = _mm256_loadu_ps(row_u + x + 1);
            const __m256 av = _mm256_loadu_ps(row_v + x), bv = _mm256_loadu_ps(row_v + x + 1);
            const __m256 odd_u = _mm256_fmadd_ps(near, au, _mm256_mul_ps(far, bu));
            const __m256 odd_v = _mm256_fmadd_ps(near, av, _mm256_mul_ps(far, bv));
            const __m256 even_u = _mm256_fmadd_ps(far, au, _mm256_mul_ps(near, bu));
            const __m256 even_v = _mm256_fmadd_ps(far, av, _mm256_mul_ps(near, bv));
            // (u, v) pairs as doubles: odd pixels' pairs P, even pixels' pairs Q,
            // stored in the order P0 Q0 P1 Q1 ... P7 Q7.
            const __m256d p_lo = _mm256_castps_pd(_mm256_unpacklo_ps(odd_u, odd_v));   // P0 P1 | P4 P5
            const __m256d p_hi = _mm256_castps_pd(_mm256_unpackhi_ps(odd_u, odd_v));   // P2 P3 | P6 P7
            const __m256d q_lo = _mm256_castps_pd(_mm256_unpacklo_ps(even_u, even_v));
            const __m256d q_hi = _mm256_castps_pd(_mm256_unpackhi_ps(even_u, even_v));
            const __m256d pq0 = _mm256_unpacklo_pd(p_lo, q_lo);  // P0 Q0 | P4 Q4
            const __m256d pq1 = _mm256_unpackhi_pd(p_lo, q_lo);  // P1 Q1 | P5 Q5
            const __m256d pq2 = _mm256_unpacklo_pd(p_hi, q_hi);  // P2 Q2 | P6 Q6
            const __m256d pq3 = _mm256_unpackhi_pd(p_hi, q_hi);  // P3 Q3 | P7 Q7
            float* o = d + 4 * x + 2;
            _mm256_storeu_pd(reinterpret_cast<double*>(o), _mm256_permute2f128_pd(pq0, pq1, 0x20));
            _mm256_storeu_pd(reinterpret_cast<double*>(o + 8), _mm256_permute2f128_pd(pq2, pq3, 0x20));
            _mm256_storeu_pd(reinterpret_cast<double*>(o + 16), _mm256_permute2f128_pd(pq0, pq1, 0x31));
            _mm256_storeu_pd(reinterpret_cast<double*>(o + 24), _mm256_permute2f128_pd(pq2, pq3, 0x31));
        }
#endif
        for (; x < sw - 1; ++x) {
            d[4 * x + 2] = 0.75f * row_u[x] + 0.25f * row_u[x + 1];
            d[4 * x + 3] = 0.75f * row_v[x] + 0.25f * row_v[x + 1];
            d[4 * x + 4] = 0.25f * row_u[x] + 0.75f * row_u[x + 1];
            d[4 * x + 5] = 0.25f * row_v[x] + 0.75f * row_v[x + 1];
        }
        d[2 * dw - 2] = row_u[sw - 1];
        d[2 * dw - 1] = row_v[sw - 1];
    }
}

// Upsample by 2^levels, through the exact 2x path whenever sizes allow.
void upsample_flow(const float* src, int sw, int sh, float* dst, int dw, int dh, int factor,
                   std::vector<int>& cols, std::vector<float>& weights, std::vector<float>& buf) {
    if (factor == 2 && dw == 2 * sw && dh == 2 * sh) {
        buf.resize(static_cast<std::size_t>(sw));
        upsample2(src, sw, sh, dst, buf.data());
    } else {
        upsample(src, sw, sh, dst, dw, dh, static_cast<float>(factor), cols, weights);
    }
}

// Sum and sum of squares: exact in integers for 8-bit images.
void moments(const std::uint8_t* src, int w, int h, std::ptrdiff_t stride, double& sum, double& sq) {
    std::uint64_t s = 0, q = 0;
    for (int y = 0; y < h; ++y) {
        const std::uint8_t* r = src + y * stride;
        std::uint32_t rs = 0, rq = 0;
        for (int x = 0; x < w; ++x) {
            rs += r[x];
            rq += static_cast<std::uint32_t>(r[x]) * r[x];
        }
        s += rs;
        q += rq;
    }
    sum = static_cast<double>(s);
    sq = static_cast<double>(q);
}

void moments(const float* src, int w, int h, std::ptrdiff_t stride, double& sum, double& sq) {
    sum = 0.0;
    sq = 0.0;
    for (int y = 0; y < h; ++y) {
        const float* r = src + y * stride;
        for (int x = 0; x < w; ++x) {
            const double v = r[x];
            sum += v;
            sq += v * v;
        }
    }
}

// Mean and reciprocal standard deviation (1 for a flat image).
template <typename T>
void gain_offset(const T* src, int w, int h, std::ptrdiff_t stride, double& mean, double& inv) {
    double sum, sq;
    moments(src, w, h, stride, sum, sq);
    const double n = static_cast<double>(w) * h;
    mean = sum / n;
    const double sd = std::sqrt(std::max(sq / n - mean * mean, 0.0));
    inv = sd > 1e-6 ? 1.0 / sd : 1.0;
}

// out = image - mean, divided by its standard deviation: removes global gain
// and offset changes between the two frames.
template <typename T>
void standardise(const T* src, int w, int h, std::ptrdiff_t stride, float* dst) {
    double mean, inv;
    gain_offset(src, w, h, stride, mean, inv);
    if constexpr (std::is_same_v<T, std::uint8_t>) {
        const float m = static_cast<float>(mean), fi = static_cast<float>(inv);
        for (int y = 0; y < h; ++y) {
            const T* r = src + y * stride;
            float* d = dst + static_cast<std::ptrdiff_t>(y) * w;
            for (int x = 0; x < w; ++x) d[x] = (static_cast<float>(r[x]) - m) * fi;
        }
    } else {
        // In double: float images near the float32 limit would overflow.
        for (int y = 0; y < h; ++y) {
            const T* r = src + y * stride;
            float* d = dst + static_cast<std::ptrdiff_t>(y) * w;
            for (int x = 0; x < w; ++x) d[x] = static_cast<float>((static_cast<double>(r[x]) - mean) * inv);
        }
    }
}

// downsample(standardise(src)) in one pass, for when the full-size level is
// never solved: the standardised full-size image is not stored.
template <typename T>
void standardise_halved(const T* src, int w, int h, std::ptrdiff_t stride, float* dst, int cw, int ch) {
    double mean, inv;
    gain_offset(src, w, h, stride, mean, inv);
    for (int y = 0; y < ch; ++y) {
        const T* r0 = src + 2 * y * stride;
        const T* r1 = r0 + stride;
        float* d = dst + static_cast<std::ptrdiff_t>(y) * cw;
        if constexpr (std::is_same_v<T, std::uint8_t>) {
            const float m = static_cast<float>(mean), fi = static_cast<float>(inv);
            for (int x = 0; x < cw; ++x) {
                const int sum = (r0[2 * x] + r0[2 * x + 1]) + (r1[2 * x] + r1[2 * x + 1]);
                d[x] = (0.25f * static_cast<float>(sum) - m) * fi;
            }
        } else {
            for (int x = 0; x < cw; ++x) {
                const double sum = (static_cast<double>(r0[2 * x]) + r0[2 * x + 1]) +
                                   (static_cast<double>(r1[2 * x]) + r1[2 * x + 1]);
                d[x] = static_cast<float>((0.25 * sum - mean) * inv);
            }
        }
    }
}

// Row y of b = -b + alpha * (sum of the in-image neighbours of f - their
// count * f); d points at that row of b.
void rhs_row(const float* f, int w, int h, int y, float alpha, float* d) {
    const float* r = f + static_cast<std::ptrdiff_t>(y) * w;
    const float* up = y > 0 ? r - w : nullptr;
    const float* dn = y < h - 1 ? r + w : nullptr;
    auto border = [&](int x) {
        float s = 0.0f, k = 0.0f;
        if (x > 0) { s += r[x - 1]; k += 1.0f; }
        if (x < w - 1) { s += r[x + 1]; k += 1.0f; }
        if (up) { s += up[x]; k += 1.0f; }
        if (dn) { s += dn[x]; k += 1.0f; }
        d[x] = -d[x] + alpha * (s - k * r[x]);
    };
    border(0);
    if (up && dn) {
        for (int x = 1; x < w - 1; ++x)
            d[x] = -d[x] + alpha * (((r[x - 1] + r[x + 1]) + (up[x] + dn[x])) - 4.0f * r[x]);
    } else {
        for (int x = 1; x < w - 1; ++x) border(x);
    }
    border(w - 1);
}

// Box means over the (2r+1)^2 window clipped to the image (each pixel divides
// by the number of pixels inside) of `channels` images made one row at a
// time: a row is written into a ring of 2r + 2 rows just before it enters
// the window, so the products the means take never fill full-size arrays.
// Running column sums padded with r zeros on each side make every mean a
// plain sum of 2r + 1 entries, with no dependency between pixels.
class RowBoxes {
public:
    RowBoxes(std::vector<float>& ring, std::vector<float>& sums, int channels, int w, int h, int r)
        : channels_(channels), w_(w), h_(h), r_(r), slots_(2 * r + 2), padded_(w + 2 * r) {
        const std::size_t ring_size = static_cast<std::size_t>(slots_) * channels * w;
        const std::size_t sums_size = static_cast<std::size_t>(channels) * padded_ + w;
        grow(ring, ring_size);
        grow(sums, sums_size);
        ring_ = ring.data();
        sums_ = sums.data();
        inv_cols_ = sums_ + static_cast<std::size_t>(channels) * padded_;
        std::fill(sums_, inv_cols_, 0.0f);
        for (int x = 0; x < w; ++x)
            inv_cols_[x] = 1.0f / static_cast<float>(std::min(x + r, w - 1) - std::max(x - r, 0) + 1);
    }

    // Row y's channels, w floats apart.
    float* slot(int y) { return ring_ + static_cast<std::size_t>(y % slots_) * channels_ * w_; }

    // Runs produce(y, slot(y)) for every row as it enters the window and
    // consume(y) when row y's means are ready (mean(c, dst) gives them).
    template <typename Produce, typename Consume>
    void run(Produce produce, Consume consume) {
        for (int y = 0; y <= std::min(r_, h_ - 1); ++y) {
            produce(y, slot(y));
            slide(slot(y), nullptr);
        }
        for (int y = 0; y < h_; ++y) {
            y_ = y;
            consume(y);
            float* entering = y + r_ + 1 < h_ ? slot(y + r_ + 1) : nullptr;
            if (entering) produce(y + r_ + 1, entering);
            slide(entering, y - r_ >= 0 ? slot(y - r_) : nullptr);
        }
    }

    // Channel c's means for the row being consumed.
    void mean(int c, float* d) const {
        const float* acc = sums_ + static_cast<std::size_t>(c) * padded_;
        const int n = 2 * r_;
        const float inv_rows = 1.0f / static_cast<float>(std::min(y_ + r_, h_ - 1) - std::max(y_ - r_, 0) + 1);
        int x = 0;
#if defined(__AVX2__)
        const __m256 row_scale = _mm256_set1_ps(inv_rows);
        for (; x + kBlockPixels <= w_; x += kBlockPixels) {
            // Four partial sums: a single running sum waits on each add.
            const float* a = acc + x;
            __m256 s0 = _mm256_loadu_ps(a), s1 = _mm256_setzero_ps(), s2 = s1, s3 = s1;
            int j = 1;
            for (; j + 3 <= n; j += 4) {
                s0 = _mm256_add_ps(s0, _mm256_loadu_ps(a + j));
                s1 = _mm256_add_ps(s1, _mm256_loadu_ps(a + j + 1));
                s2 = _mm256_add_ps(s2, _mm256_loadu_ps(a + j + 2));
                s3 = _mm256_add_ps(s3, _mm256_loadu_ps(a + j + 3));
            }
            for (; j <= n; ++j) s1 = _mm256_add_ps(s1, _mm256_loadu_ps(a + j));
            const __m256 sum = _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3));
            _mm256_storeu_ps(d + x, _mm256_mul_ps(sum, _mm256_mul_ps(row_scale, _mm256_loadu_ps(inv_cols_ + x))));
        }
#endif
        for (; x < w_; ++x) {
            float sum = acc[x];
            for (int j = 1; j <= n; ++j) sum += acc[x + j];
            d[x] = sum * (inv_rows * inv_cols_[x]);
        }
    }

private:
    // Column sums += the entering row, then -= the leaving one (either may
    // be null), in one pass.
    void slide(const float* entering, const float* leaving) {
        for (int c = 0; c < channels_; ++c) {
            float* col = sums_ + static_cast<std::size_t>(c) * padded_ + r_;
            const std::size_t at = static_cast<std::size_t>(c) * w_;
            if (entering && leaving) {
                const float* add = entering + at;
                const float* sub = leaving + at;
                for (int x = 0; x < w_; ++x) col[x] = (col[x] + add[x]) - sub[x];
            } else if (entering) {
                const float* add = entering + at;
                for (int x = 0; x < w_; ++x) col[x] += add[x];
            } else if (leaving) {
                const float* sub = leaving + at;
                for (int x = 0; x < w_; ++x) col[x] -= sub[x];
            }
        }
    }

    int channels_, w_, h_, r_, slots_, padded_, y_ = 0;
    float* ring_;
    float* sums_;
    float* inv_cols_;
};

// Red-black layout: colour c holds the pixels with (x + y) % 2 == c, and row
// y of its plane lists its pixels x = 2k + ((y + c) & 1) at entry
// (y + 1) * stride + kBlock + k. The zero entries around each row stand in
// for the neighbours missing at the image border, so a row relaxes without
// tests, and rows start on a block boundary.
constexpr int kBlock = kBlockPixels;  // pixels per coefficient block
enum Coeff : int { kInvA, kInvB, kInvC, kRhsX, kRhsY, kCoeffs };

// Entries per plane row: the left pad, then whole blocks that leave at least
// one zero entry after the longest row.
int plane_stride(int w) { return kBlock + ((w + 1) / 2 + kBlock) / kBlock * kBlock; }

// Writes coefficient `slot` of row y's pixels, from s: entry k of colour c
// sits in block k / kBlock of that row, lane k % kBlock. s holds
// 2 * blocks * kBlock entries, zero past the row's end: zero coefficients
// keep the plane entries there zero.
void pack_row(const float* s, int y, int blocks, Coeff slot, std::vector<float>* coeffs) {
    const std::size_t row = static_cast<std::size_t>(y) * blocks * kCoeffs * kBlock;
    float* even = coeffs[y & 1].data() + row + slot * kBlock;
    float* odd = coeffs[(y + 1) & 1].data() + row + slot * kBlock;
    // Sixteen pixels fill one block of each colour.
    for (int k = 0; k < blocks * kBlock; k += kBlock, even += kCoeffs * kBlock, odd += kCoeffs * kBlock) {
#if defined(__AVX2__)
        const __m256 lo = _mm256_loadu_ps(s + 2 * k), hi = _mm256_loadu_ps(s + 2 * k + kBlock);
        const __m256 e = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0));
        const __m256 o = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1));
        _mm256_storeu_ps(even, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), 0xD8)));
        _mm256_storeu_ps(odd, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(o), 0xD8)));
#else
        for (int j = 0; j < kBlock; ++j) {
            even[j] = s[2 * (k + j)];
            odd[j] = s[2 * (k + j) + 1];
        }
#endif
    }
}

// Coefficient `slot` of row y's w pixels, into d: the inverse of pack_row.
void unpack_row(const std::vector<float>* coeffs, int y, int blocks, Coeff slot, int w, float* d) {
    const std::size_t row = static_cast<std::size_t>(y) * blocks * kCoeffs * kBlock;
    const float* even = coeffs[y & 1].data() + row + slot * kBlock;
    const float* odd = coeffs[(y + 1) & 1].data() + row + slot * kBlock;
    int k = 0;
#if defined(__AVX2__)
    // One block of each colour interleaves into sixteen pixels.
    for (; 2 * k + 2 * kBlock <= w; k += kBlock, even += kCoeffs * kBlock, odd += kCoeffs * kBlock) {
        const __m256 e = _mm256_loadu_ps(even), o = _mm256_loadu_ps(odd);
        const __m256 lo = _mm256_unpacklo_ps(e, o);  // e0 o0 e1 o1 | e4 o4 e5 o5
        const __m256 hi = _mm256_unpackhi_ps(e, o);  // e2 o2 e3 o3 | e6 o6 e7 o7
        _mm256_storeu_ps(d + 2 * k, _mm256_permute2f128_ps(lo, hi, 0x20));
        _mm256_storeu_ps(d + 2 * k + kBlock, _mm256_permute2f128_ps(lo, hi, 0x31));
    }
#endif
    for (int j = 0; 2 * (k + j) < w; ++j) {
        const int at = (j / kBlock) * kCoeffs * kBlock + j % kBlock;
        d[2 * (k + j)] = even[at];
        if (2 * (k + j) + 1 < w) d[2 * (k + j) + 1] = odd[at];
    }
}

// Row y of the image held by the two colour planes, into d (Add: added to d).
template <bool Add = false>
void merge_row(const std::vector<float>* planes, int w, int y, int stride, float* d) {
    const std::size_t row = static_cast<std::size_t>(y + 1) * stride + kBlock;
    const float* even = planes[y & 1].data() + row;
    const float* odd = planes[(y + 1) & 1].data() + row;
    int k = 0;
#if defined(__AVX2__)
    // Eight entries of each colour interleave into sixteen pixels.
    for (; 2 * k + 2 * kBlock <= w; k += kBlock) {
        const __m256 e = _mm256_loadu_ps(even + k), o = _mm256_loadu_ps(odd + k);
        const __m256 lo = _mm256_unpacklo_ps(e, o);  // e0 o0 e1 o1 | e4 o4 e5 o5
        const __m256 hi = _mm256_unpackhi_ps(e, o);  // e2 o2 e3 o3 | e6 o6 e7 o7
        __m256 first = _mm256_permute2f128_ps(lo, hi, 0x20), second = _mm256_permute2f128_ps(lo, hi, 0x31);
        float* out = d + 2 * k;
        if constexpr (Add) {
            first = _mm256_add_ps(_mm256_loadu_ps(out), first);
            second = _mm256_add_ps(_mm256_loadu_ps(out + kBlock), second);
        }
        _mm256_storeu_ps(out, first);
        _mm256_storeu_ps(out + kBlock, second);
    }
#endif
    for (int j = k; 2 * j < w; ++j) d[2 * j] = Add ? d[2 * j] + even[j] : even[j];
    for (int j = k; 2 * j + 1 < w; ++j) d[2 * j + 1] = Add ? d[2 * j + 1] + odd[j] : odd[j];
}

// dst = (Add: dst +) the image held by the two colour planes.
template <bool Add>
void merge(const std::vector<float>* planes, int w, int h, int stride, float* dst) {
    for (int y = 0; y < h; ++y) merge_row<Add>(planes, w, y, stride, dst + static_cast<std::ptrdiff_t>(y) * w);
}

// flow = the interleaved (u + du, v + dv), du and dv held by colour planes.
void merge_interleaved(const std::vector<float>* du, const std::vector<float>* dv, const float* u, const float* v,
                       int w, int h, int stride, float* flow) {
    for (int y = 0; y < h; ++y) {
        const std::size_t at = static_cast<std::size_t>(y) * w;
        const std::size_t row = static_cast<std::size_t>(y + 1) * stride + kBlock;
        const float* eu = du[y & 1].data() + row;
        const float* ou = du[(y + 1) & 1].data() + row;
        const float* ev = dv[y & 1].data() + row;
        const float* ov = dv[(y + 1) & 1].data() + row;
        const float* ur = u + at;
        const float* vr = v + at;
        float* d = flow + 2 * at;
        int k = 0;
#if defined(__AVX2__)
        // Eight entries of each colour and plane give sixteen (dx, dy) pairs.
        for (; 2 * k + 2 * kBlock <= w; k += kBlock) {
            const __m256 e = _mm256_loadu_ps(eu + k), o = _mm256_loadu_ps(ou + k);
            const __m256 lo = _mm256_unpacklo_ps(e, o), hi = _mm256_unpackhi_ps(e, o);
            const __m256 u0 = _mm256_add_ps(_mm256_loadu_ps(ur + 2 * k), _mm256_permute2f128_ps(lo, hi, 0x20));
            const __m256 u1 = _mm256_add_ps(_mm256_loadu_ps(ur + 2 * k + kBlock), _mm256_permute2f128_ps(lo, hi, 0x31));
            const __m256 f = _mm256_loadu_ps(ev + k), g = _mm256_loadu_ps(ov + k);
            const __m256 lo_v = _mm256_unpacklo_ps(f, g), hi_v = _mm256_unpackhi_ps(f, g);
            const __m256 v0 = _mm256_add_ps(_mm256_loadu_ps(vr + 2 * k), _mm256_permute2f128_ps(lo_v, hi_v, 0x20));
            const __m256 v1 = _mm256_add_ps(_mm256_loadu_ps(vr + 2 * k + kBlock), _mm256_permute2f128_ps(lo_v, hi_v, 0x31));
            auto store_pairs = [](__m256 a, __m256 b, float* o) {
                const __m256 pl = _mm256_unpacklo_ps(a, b);  // u0 v0 u1 v1 | u4 v4 u5 v5
                const __m256 ph = _mm256_unpackhi_ps(a, b);  // u2 v2 u3 v3 | u6 v6 u7 v7
                _mm256_storeu_ps(o, _mm256_permute2f128_ps(pl, ph, 0x20));
                _mm256_storeu_ps(o + kBlock, _mm256_permute2f128_ps(pl, ph, 0x31));
            };
            store_pairs(u0, v0, d + 4 * k);
            store_pairs(u1, v1, d + 4 * k + 2 * kBlock);
        }
#endif
        for (int j = k; 2 * j < w; ++j) {
            d[4 * j] = ur[2 * j] + eu[j];
            d[4 * j + 1] = vr[2 * j] + ev[j];
        }
        for (int j = k; 2 * j + 1 < w; ++j) {
            d[4 * j + 2] = ur[2 * j + 1] + ou[j];
            d[4 * j + 3] = vr[2 * j + 1] + ov[j];
        }
    }
}

// Adds to the two colour planes of a w x h image the cell-centred bilinear
// interpolation of e (w / 2 x h / 2, edges replicated): pixel x takes 3/4 of
// cell x / 2 and 1/4 of cell x / 2 - 1 (x even) or x / 2 + 1 (x odd), both
// clamped to the grid; rows first, then columns. `row` holds w / 2 + 2 floats.
void add_prolonged(const float* e, int w, int h, int stride, std::vector<float>* planes, float* row) {
    const int cw = w / 2, ch = h / 2;
    float* t = row + 1;  // t[-1] and t[cw] replicate the edges
    for (int y = 0; y < h; ++y) {
        const int near = std::min(y / 2, ch - 1);
        const int far = std::clamp((y & 1) ? y / 2 + 1 : y / 2 - 1, 0, ch - 1);
        const float* rn = e + static_cast<std::ptrdiff_t>(near) * cw;
        const float* rf = e + static_cast<std::ptrdiff_t>(far) * cw;
        for (int x = 0; x < cw; ++x) t[x] = 0.75f * rn[x] + 0.25f * rf[x];
        t[-1] = t[0];
        t[cw] = t[cw - 1];
        const std::size_t at = static_cast<std::size_t>(y + 1) * stride + kBlock;
        float* even = planes[y & 1].data() + at;
        float* odd = planes[(y + 1) & 1].data() + at;
        // Pixel 2k + 1 lies between cells k and k + 1, pixel 2k between k - 1 and k.
        for (int k = 0; 2 * k < w; ++k) even[k] += 0.75f * t[k] + 0.25f * t[k - 1];
        for (int k = 0; 2 * k + 1 < w; ++k) odd[k] += 0.75f * t[k] + 0.25f * t[k + 1];
    }
}

// d[x] += s[2x] + s[2x + 1] for x < n.
void add_pair_sums(const float* s, int n, float* d) {
    int x = 0;
#if defined(__AVX2__)
    for (; x + kBlockPixels <= n; x += kBlockPixels) {
        // hadd pairs within 128-bit lanes: s0+s1 s2+s3 s8+s9 s10+s11 | s4+s5 ...
        const __m256 pairs = _mm256_hadd_ps(_mm256_loadu_ps(s + 2 * x), _mm256_loadu_ps(s + 2 * x + kBlockPixels));
        const __m256 ordered = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(pairs), 0xD8));
        _mm256_storeu_ps(d + x, _mm256_add_ps(_mm256_loadu_ps(d + x), ordered));
    }
#endif
    for (; x < n; ++x) d[x] += s[2 * x] + s[2 * x + 1];
}

// Sums of src (w x h) over 2x2 cells into dst (w / 2 x h / 2); with an odd
// side, the last row or column joins the cell before it.
void sum_cells(const float* src, int w, int h, float* dst) {
    const int cw = w / 2, ch = h / 2;
    std::fill(dst, dst + static_cast<std::size_t>(cw) * ch, 0.0f);
    for (int y = 0; y < h; ++y) {
        const float* s = src + static_cast<std::ptrdiff_t>(y) * w;
        float* d = dst + static_cast<std::ptrdiff_t>(std::min(y / 2, ch - 1)) * cw;
        add_pair_sums(s, cw, d);
        if (w & 1) d[cw - 1] += s[w - 1];
    }
}

// (left + right) + (up + down) of row r, whose rows above and below are up
// and dn (null outside the image, where neighbours count 0).
void neighbour_sum_row(const float* up, const float* r, const float* dn, int w, float* d) {
    for (int x = 0; x < w; ++x) d[x] = (up ? up[x] : 0.0f) + (dn ? dn[x] : 0.0f);
    d[0] += r[1];
    for (int x = 1; x < w - 1; ++x) d[x] += r[x - 1] + r[x + 1];
    d[w - 1] += r[w - 2];
}

// Row y of the 2x2 systems: adds the smoothness weight times the pixel's
// in-image neighbour count to the tensor's diagonal and writes the inverse's
// entries (a b; b c). The outputs never overlap the inputs.
void invert_row(const float* xx, const float* xy, const float* yy, int w, int h, int y, float alpha,
                float* __restrict a, float* __restrict b, float* __restrict c) {
    const float reg_y = alpha * static_cast<float>((y > 0) + (y < h - 1));
    for (int x = 0; x < w; ++x) {
        const float reg = reg_y + alpha * static_cast<float>((x > 0) + (x < w - 1));
        const float jxx = xx[x] + reg, jxy = xy[x], jyy = yy[x] + reg;
        const float inv_det = 1.0f / (jxx * jyy - jxy * jxy);
        a[x] = jyy * inv_det;
        b[x] = -jxy * inv_det;
        c[x] = jxx * inv_det;
    }
}

// Row y of the residual c + alpha * (neighbour sum of d) - (J + alpha * count) d
// of the 2x2 systems, given the row's neighbour sums. The outputs are
// restrict: eleven rows are too many pointers for the compiler's overlap checks.
void residual_row(const float* jxx, const float* jxy, const float* jyy, const float* cx, const float* cy,
                  const float* u, const float* v, const float* near_u, const float* near_v, int w, int h,
                  int y, float alpha, float* __restrict res_u, float* __restrict res_v) {
    const float reg_y = alpha * static_cast<float>((y > 0) + (y < h - 1));
    for (int x = 0; x < w; ++x) {
        const float reg = reg_y + alpha * static_cast<float>((x > 0) + (x < w - 1));
        res_u[x] = (cx[x] + alpha * near_u[x]) - ((jxx[x] + reg) * u[x] + jxy[x] * v[x]);
        res_v[x] = (cy[x] + alpha * near_v[x]) - (jxy[x] * u[x] + (jyy[x] + reg) * v[x]);
    }
}

// SOR update of `blocks` blocks of one packed row. ou, ov point at the other
// colour's entry in the same row and column: the left and right neighbours
// are its entries k + p - 1 and k + p, the upper and lower ones entry k of
// the rows a stride away. Entries past the row's end have zero coefficients
// and stay zero.
// Always inlined: the coarse levels relax many short rows, where a call costs
// as much as the row.
[[gnu::always_inline]] inline void relax_row(int blocks, float* du, float* dv, const float* ou, const float* ov,
               std::ptrdiff_t stride, int p, const float* coeffs, float alpha, float omega) {
    const float* lu = ou + p - 1;
    const float* lv = ov + p - 1;
    int k = 0;
#if defined(__AVX2__)
    const __m256 va = _mm256_set1_ps(alpha), vw = _mm256_set1_ps(omega);
    for (; k < blocks * kBlock; k += kBlock, coeffs += kCoeffs * kBlock) {
        const __m256 su = _mm256_add_ps(_mm256_add_ps(_mm256_loadu_ps(lu + k), _mm256_loadu_ps(lu + k + 1)),
                                        _mm256_add_ps(_mm256_loadu_ps(ou + k - stride),
                                                      _mm256_loadu_ps(ou + k + stride)));
        const __m256 sv = _mm256_add_ps(_mm256_add_ps(_mm256_loadu_ps(lv + k), _mm256_loadu_ps(lv + k + 1)),
                                        _mm256_add_ps(_mm256_loadu_ps(ov + k - stride),
                                                      _mm256_loadu_ps(ov + k + stride)));
        const __m256 rx = _mm256_fmadd_ps(va, su, _mm256_loadu_ps(coeffs + kRhsX * kBlock));
        const __m256 ry = _mm256_fmadd_ps(va, sv, _mm256_loadu_ps(coeffs + kRhsY * kBlock));
        const __m256 a = _mm256_loadu_ps(coeffs + kInvA * kBlock);
        const __m256 b = _mm256_loadu_ps(coeffs + kInvB * kBlock);
        const __m256 c = _mm256_loadu_ps(coeffs + kInvC * kBlock);
        const __m256 u = _mm256_loadu_ps(du + k), v = _mm256_loadu_ps(dv + k);
        const __m256 tu = _mm256_fmadd_ps(a, rx, _mm256_mul_ps(b, ry));
        const __m256 tv = _mm256_fmadd_ps(b, rx, _mm256_mul_ps(c, ry));
        _mm256_storeu_ps(du + k, _mm256_fmadd_ps(vw, _mm256_sub_ps(tu, u), u));
        _mm256_storeu_ps(dv + k, _mm256_fmadd_ps(vw, _mm256_sub_ps(tv, v), v));
    }
#endif
    for (; k < blocks * kBlock; ++k) {
        const float* cf = coeffs + (k / kBlock) * kCoeffs * kBlock + k % kBlock;
        const float rx = cf[kRhsX * kBlock] + alpha * ((lu[k] + lu[k + 1]) + (ou[k - stride] + ou[k + stride]));
        const float ry = cf[kRhsY * kBlock] + alpha * ((lv[k] + lv[k + 1]) + (ov[k - stride] + ov[k + stride]));
        du[k] += omega * ((cf[kInvA * kBlock] * rx + cf[kInvB * kBlock] * ry) - du[k]);
        dv[k] += omega * ((cf[kInvB * kBlock] * rx + cf[kInvC * kBlock] * ry) - dv[k]);
    }
}

#if defined(__AVX2__)
// One relax_row block: the pixels' new (u, v) from their neighbours' sums su,
// sv, their current values u, v and their coefficients.
[[gnu::always_inline]] inline void relax_block(__m256 su, __m256 sv, __m256 u, __m256 v, const float* coeffs,
                                               __m256 va, __m256 vw, __m256& new_u, __m256& new_v) {
    const __m256 rx = _mm256_fmadd_ps(va, su, _mm256_loadu_ps(coeffs + kRhsX * kBlock));
    const __m256 ry = _mm256_fmadd_ps(va, sv, _mm256_loadu_ps(coeffs + kRhsY * kBlock));
    const __m256 a = _mm256_loadu_ps(coeffs + kInvA * kBlock);
    const __m256 b = _mm256_loadu_ps(coeffs + kInvB * kBlock);
    const __m256 c = _mm256_loadu_ps(coeffs + kInvC * kBlock);
    const __m256 tu = _mm256_fmadd_ps(a, rx, _mm256_mul_ps(b, ry));
    const __m256 tv = _mm256_fmadd_ps(b, rx, _mm256_mul_ps(c, ry));
    new_u = _mm256_fmadd_ps(vw, _mm256_sub_ps(tu, u), u);
    new_v = _mm256_fmadd_ps(vw, _mm256_sub_ps(tv, v), v);
}

// relax_row of red row t, then of black row t - 1, block by block: black
// block k needs red row t only at block k, just relaxed, and red block k + 1
// reads black row t - 1 only at block k + 1, not yet relaxed, so the result
// is that of the two whole rows one after the other. The black row's current
// values are the red row's upper neighbours: loaded once for both.
// ru, rv: red row t; bu, bv: black row t (same column entries); p: the
// rows' common parity offset; red_coeffs, black_coeffs: rows t and t - 1.
[[gnu::always_inline]] inline void relax_row_pair(int blocks, float* ru, float* rv, float* bu, float* bv,
                                                  std::ptrdiff_t stride, int p, const float* red_coeffs,
                                                  const float* black_coeffs, float alpha, float omega) {
    const __m256 va = _mm256_set1_ps(alpha), vw = _mm256_set1_ps(omega);
    const float* rlu = bu + p - 1;  // red row t's left / right neighbours: black row t
    const float* rlv = bv + p - 1;
    float* ku = bu - stride;        // black row t - 1
    float* kv = bv - stride;
    const float* klu = ru - stride + p - 1;  // its left / right neighbours: red row t - 1
    const float* klv = rv - stride + p - 1;
    for (int k = 0; k < blocks * kBlock; k += kBlock, red_coeffs += kCoeffs * kBlock, black_coeffs += kCoeffs * kBlock) {
        const __m256 black_u = _mm256_loadu_ps(ku + k), black_v = _mm256_loadu_ps(kv + k);
        const __m256 su = _mm256_add_ps(_mm256_add_ps(_mm256_loadu_ps(rlu + k), _mm256_loadu_ps(rlu + k + 1)),
                                        _mm256_add_ps(black_u, _mm256_loadu_ps(bu + k + stride)));
        const __m256 sv = _mm256_add_ps(_mm256_add_ps(_mm256_loadu_ps(rlv + k), _mm256_loadu_ps(rlv + k + 1)),
                                        _mm256_add_ps(black_v, _mm256_loadu_ps(bv + k + stride)));
        __m256 red_u, red_v;
        relax_block(su, sv, _mm256_loadu_ps(ru + k), _mm256_loadu_ps(rv + k), red_coeffs, va, vw, red_u, red_v);
        _mm256_storeu_ps(ru + k, red_u);
        _mm256_storeu_ps(rv + k, red_v);
        const __m256 tu = _mm256_add_ps(_mm256_add_ps(_mm256_loadu_ps(klu + k), _mm256_loadu_ps(klu + k + 1)),
                                        _mm256_add_ps(_mm256_loadu_ps(ru + k - 2 * stride), red_u));
        const __m256 tv = _mm256_add_ps(_mm256_add_ps(_mm256_loadu_ps(klv + k), _mm256_loadu_ps(klv + k + 1)),
                                        _mm256_add_ps(_mm256_loadu_ps(rv + k - 2 * stride), red_v));
        __m256 new_u, new_v;
        relax_block(tu, tv, black_u, black_v, black_coeffs, va, vw, new_u, new_v);
        _mm256_storeu_ps(ku + k, new_u);
        _mm256_storeu_ps(kv + k, new_v);
    }
}
#endif

// Sizes board B's planes and coefficients for a w x h image; returns the
// coefficient blocks per row.
template <typename Board>
int size_board(Board& B, int w, int h) {
    B.stride = plane_stride(w);
    const int blocks = (B.stride - kBlock) / kBlock;
    const std::size_t plane = static_cast<std::size_t>(h + 2) * B.stride;
    for (int c = 0; c < 2; ++c) {
        grow(B.du[c], plane);
        grow(B.dv[c], plane);
        grow(B.coeffs[c], static_cast<std::size_t>(h) * blocks * kCoeffs * kBlock);
    }
    return blocks;
}

template <typename Board>
void zero_increment(Board& B, int h) {
    const std::size_t plane = static_cast<std::size_t>(h + 2) * B.stride;
    for (int c = 0; c < 2; ++c) {
        std::fill_n(B.du[c].begin(), plane, 0.0f);
        std::fill_n(B.dv[c].begin(), plane, 0.0f);
    }
}

// `sweeps` red-black SOR sweeps of the system held by board B (w x h pixels).
template <typename Board>
void relax_sweeps(Board& B, int w, int h, int sweeps, float alpha, float omega) {
    const int stride = B.stride;
    const std::size_t row_coeffs = static_cast<std::size_t>((stride - kBlock) / kBlock) * kCoeffs * kBlock;
    // Relax row y of colour c. Its pixels sit at x = 2k + p; their left
    // and right neighbours are entries k + p - 1 and k + p of the other
    // colour's row, the upper and lower ones entry k of its adjacent rows.
    auto relax = [&](int c, int y) {
        const int p = (y + c) & 1;
        const std::size_t row = static_cast<std::size_t>(y + 1) * stride + kBlock;
        const int row_blocks = ((w + 1 - p) / 2 + kBlock - 1) / kBlock;
        relax_row(row_blocks, B.du[c].data() + row, B.dv[c].data() + row,
                  B.du[c ^ 1].data() + row, B.dv[c ^ 1].data() + row, stride, p,
                  B.coeffs[c].data() + static_cast<std::size_t>(y) * row_coeffs, alpha, omega);
    };
    // One pass down the image runs every sweep. Step t of a sweep relaxes
    // red row t, then black row t - 1: black row t - 1 needs red rows
    // t - 2 to t, and red row t has read black row t - 1 before it
    // changes. Each sweep trails the one before it by two rows, so its
    // red row t finds black rows t - 1 to t + 1 already swept once more.
    // The result is exactly that of whole sweeps, all red then all black,
    // while the rows in flight stay in cache.
    for (int front = 0; front <= h + 2 * (sweeps - 1); ++front) {
        for (int s = 0; s < sweeps; ++s) {
            const int t = front - 2 * s;
            if (t < 0) break;
            if (t > h) continue;
#if defined(__AVX2__)
            if (t > 0 && t < h) {
                // Red row t and black row t - 1 share their parity offset and block count.
                const int p = t & 1;
                const std::size_t row = static_cast<std::size_t>(t + 1) * stride + kBlock;
                const int row_blocks = ((w + 1 - p) / 2 + kBlock - 1) / kBlock;
                relax_row_pair(row_blocks, B.du[0].data() + row, B.dv[0].data() + row, B.du[1].data() + row,
                               B.dv[1].data() + row, stride, p,
                               B.coeffs[0].data() + static_cast<std::size_t>(t) * row_coeffs,
                               B.coeffs[1].data() + static_cast<std::size_t>(t - 1) * row_coeffs, alpha, omega);
                continue;
            }
#endif
            if (t < h) relax(0, t);
            if (t > 0) relax(1, t - 1);
        }
    }
}

}  // namespace

FlowParams flow_preset(const std::string& name) {
    FlowParams p;
    // Tuned on microexpr.flowtruth face crops (bench/compare_opencv.py).
    if (name == "fast") {
        p.levels = 2; p.finest_level = 1; p.warps = 1; p.sweeps = 4; p.window = 1;
        p.smoothness = 0.03f; p.relaxation = 1.9f;
    } else if (name == "balanced") {
        p.levels = 4; p.finest_level = 0; p.warps = 1; p.sweeps = 7; p.window = 3;
        p.smoothness = 0.01f; p.relaxation = 1.9f; p.correction_sweeps = 10;
    } else if (name == "accurate") {
        p.levels = 4; p.finest_level = 0; p.warps = 2; p.sweeps = 24; p.window = 4;
        p.smoothness = 0.012f; p.relaxation = 1.9f; p.correction_sweeps = 12;
    } else {
        throw std::invalid_argument("unknown flow preset '" + name +
                                    "': expected 'fast', 'balanced' or 'accurate'");
    }
    return p;
}

DenseFlow::DenseFlow(const FlowParams& p) : params_(p) {
    if (p.levels < 0 || p.levels > 10)
        throw std::invalid_argument("levels must be in [0, 10], got " + std::to_string(p.levels));
    if (p.finest_level < 0 || p.finest_level > 4)
        throw std::invalid_argument("finest_level must be in [0, 4], got " +
                                    std::to_string(p.finest_level));
    if (p.warps < 1 || p.warps > 50)
        throw std::invalid_argument("warps must be in [1, 50], got " + std::to_string(p.warps));
    if (p.sweeps < 0 || p.sweeps > 200)
        throw std::invalid_argument("sweeps must be in [0, 200], got " + std::to_string(p.sweeps));
    if (p.window < 0 || p.window > 16)
        throw std::invalid_argument("window must be in [0, 16], got " + std::to_string(p.window));
    if (!(p.smoothness > 0.0f) || !std::isfinite(p.smoothness))
        throw std::invalid_argument("smoothness must be a positive finite number");
    if (p.highpass < 0 || p.highpass > 64)
        throw std::invalid_argument("highpass must be in [0, 64], got " + std::to_string(p.highpass));
    if (!(p.relaxation > 0.0f && p.relaxation < 2.0f))
        throw std::invalid_argument("relaxation must be in (0, 2)");
    if (p.correction_sweeps < 0 || p.correction_sweeps > 200)
        throw std::invalid_argument("correction_sweeps must be in [0, 200], got " +
                                    std::to_string(p.correction_sweeps));
}

template <typename T>
void DenseFlow::load(const T* prev, const T* next, int w, int h, std::ptrdiff_t stride) {
    if (!prev || !next) throw std::invalid_argument("null image pointer");
    if (w < kMinFlowSide || h < kMinFlowSide)
        throw std::invalid_argument("images must be at least " + std::to_string(kMinFlowSide) +
                                    "x" + std::to_string(kMinFlowSide) + " pixels, got " +
                                    std::to_string(w) + "x" + std::to_string(h));
    if (stride < w) throw std::invalid_argument("row stride smaller than the width");
    // Levels down to about 12 px on the short side; the finest computed
    // level cannot be coarser than the coarsest one.
    int top = 0;
    for (int s = std::min(w, h); s / 2 >= 12 && top < params_.finest_level + params_.levels; s /= 2)
        ++top;
    levels_.resize(static_cast<std::size_t>(top) + 1);
    // Only the pyramid above the full-size level is used when it is not solved.
    const bool skip_full = params_.finest_level > 0 && top > 0 && params_.highpass == 0;
    int lw = w, lh = h;
    for (auto& L : levels_) {
        L.w = lw;
        L.h = lh;
        const std::size_t n = (skip_full && &L == &levels_[0]) ? 0 : static_cast<std::size_t>(lw) * lh;
        L.prev.resize(n);
        L.next.resize(n);
        lw /= 2;
        lh /= 2;
    }
    if (skip_full) {
        Level& half = levels_[1];
        standardise_halved(prev, w, h, stride, half.prev.data(), half.w, half.h);
        standardise_halved(next, w, h, stride, half.next.data(), half.w, half.h);
    } else {
        standardise(prev, w, h, stride, levels_[0].prev.data());
        standardise(next, w, h, stride, levels_[0].next.data());
    }
    if (params_.highpass > 0) {
        // Local mean removal: a lighting gradient that changes between the
        // frames would otherwise read as motion.
        // Both images in one pass, in place: each row is copied into the ring
        // before it changes.
        float* p = levels_[0].prev.data();
        float* q = levels_[0].next.data();
        grow(box_rows_, 2 * static_cast<std::size_t>(w));
        float* mean_p = box_rows_.data();
        float* mean_q = mean_p + w;
        RowBoxes local(box_ring_, box_acc_, 2, w, h, params_.highpass);
        local.run(
            [&](int y, float* rows) {
                const std::size_t row = static_cast<std::size_t>(y) * w;
                std::copy(p + row, p + row + w, rows);
                std::copy(q + row, q + row + w, rows + w);
            },
            [&](int y) {
                local.mean(0, mean_p);
                local.mean(1, mean_q);
                float* rp = p + static_cast<std::size_t>(y) * w;
                float* rq = q + static_cast<std::size_t>(y) * w;
                for (int x = 0; x < w; ++x) rp[x] -= mean_p[x];
                for (int x = 0; x < w; ++x) rq[x] -= mean_q[x];
            });
    }
    for (std::size_t l = skip_full ? 2 : 1; l < levels_.size(); ++l) {
        const Level& f = levels_[l - 1];
        Level& c = levels_[l];
        downsample(f.prev.data(), f.w, c.prev.data(), c.w, c.h);
        downsample(f.next.data(), f.w, c.next.data(), c.w, c.h);
    }
}

void DenseFlow::compute(const std::uint8_t* prev, const std::uint8_t* next, int w, int h,
                        std::ptrdiff_t stride, float* flow) {
    load(prev, next, w, h, stride);
    run(flow);
}

void DenseFlow::compute(const float* prev, const float* next, int w, int h,
                        std::ptrdiff_t stride, float* flow) {
    load(prev, next, w, h, stride);
    run(flow);
}

// The correction grid is the finest level's (w / 2 x h / 2, an odd last row
// or column joining the cell before it). Its equations are the fine ones
// summed over each 2x2 cell for a correction constant on the cell: the
// tensors add up and the smoothness weight stays the same (four fine pixels
// of coupling to a neighbouring cell, each at a quarter of the cells' spacing).
void DenseFlow::build_correction_grid(int w, int h) {
    const int cw = w / 2, ch = h / 2;
    const std::size_t n = static_cast<std::size_t>(w) * h;
    const std::size_t cn = static_cast<std::size_t>(cw) * ch;
    const int blocks = size_board(coarse_board_, cw, ch);
    const std::size_t padded_row = 2 * static_cast<std::size_t>(blocks) * kBlock;
    grow(coarse_, 5 * cn + 3 * padded_row);
    float* sums = coarse_.data();
    for (int k = 0; k < 3; ++k) sum_cells(tensor_.data() + k * n, w, h, sums + k * cn);
    float* rows = sums + 5 * cn;
    std::fill(rows, rows + 3 * padded_row, 0.0f);
    float* inv_a = rows;
    float* inv_b = rows + padded_row;
    float* inv_c = rows + 2 * padded_row;
    for (int y = 0; y < ch; ++y) {
        const std::size_t at = static_cast<std::size_t>(y) * cw;
        invert_row(sums + at, sums + cn + at, sums + 2 * cn + at, cw, ch, y, params_.smoothness, inv_a, inv_b,
                   inv_c);
        pack_row(inv_a, y, blocks, kInvA, coarse_board_.coeffs);
        pack_row(inv_b, y, blocks, kInvB, coarse_board_.coeffs);
        pack_row(inv_c, y, blocks, kInvC, coarse_board_.coeffs);
    }
}

// Adds to the increment on board_ the correction that removes the smooth
// part of its error: the residual summed over cells, solved on the correction
// grid from zero, interpolated back bilinearly.
void DenseFlow::correct_on_coarse_grid(int w, int h) {
    const float alpha = params_.smoothness;
    const int cw = w / 2, ch = h / 2;
    const std::size_t n = static_cast<std::size_t>(w) * h;
    const std::size_t cn = static_cast<std::size_t>(cw) * ch;
    Checkerboard& B = board_;
    Checkerboard& C = coarse_board_;
    // The residual a row at a time, summed over cells straight into the
    // packing rows. The increment's rows are merged from the colour planes
    // into a ring of three (the row and its neighbours); the constant part
    // c of the right-hand side comes back from the packed coefficients.
    const int blocks = (C.stride - kBlock) / kBlock;
    const int fine_blocks = (B.stride - kBlock) / kBlock;
    const std::size_t padded_row = 2 * static_cast<std::size_t>(blocks) * kBlock;
    // Packing rows: their tails past cw stay zero from build_correction_grid.
    float* cell_x = coarse_.data() + 5 * cn;
    float* cell_y = cell_x + padded_row;
    grow(tmp_, 6 * static_cast<std::size_t>(w));
    grow(tmp2_, 6 * static_cast<std::size_t>(w));
    float* ring_u = tmp_.data();      // 3 rows
    float* ring_v = ring_u + 3 * w;   // 3 rows
    float* near_u = tmp2_.data();
    float* near_v = near_u + w;
    float* res_u = near_v + w;
    float* res_v = res_u + w;
    float* cx = res_v + w;
    float* cy = cx + w;
    auto ring_row = [&](float* ring, int y) { return ring + static_cast<std::ptrdiff_t>(y % 3) * w; };
    merge_row(B.du, w, 0, B.stride, ring_row(ring_u, 0));
    merge_row(B.dv, w, 0, B.stride, ring_row(ring_v, 0));
    for (int y = 0; y < h; ++y) {
        const std::size_t at = static_cast<std::size_t>(y) * w;
        if (y + 1 < h) {
            merge_row(B.du, w, y + 1, B.stride, ring_row(ring_u, y + 1));
            merge_row(B.dv, w, y + 1, B.stride, ring_row(ring_v, y + 1));
        }
        const float* u = ring_row(ring_u, y);
        const float* v = ring_row(ring_v, y);
        neighbour_sum_row(y > 0 ? ring_row(ring_u, y - 1) : nullptr, u, y < h - 1 ? ring_row(ring_u, y + 1) : nullptr,
                          w, near_u);
        neighbour_sum_row(y > 0 ? ring_row(ring_v, y - 1) : nullptr, v, y < h - 1 ? ring_row(ring_v, y + 1) : nullptr,
                          w, near_v);
        const float* jxx = tensor_.data() + at;
        const float* jxy = jxx + n;
        const float* jyy = jxy + n;
        unpack_row(B.coeffs, y, fine_blocks, kRhsX, w, cx);
        unpack_row(B.coeffs, y, fine_blocks, kRhsY, w, cy);
        residual_row(jxx, jxy, jyy, cx, cy, u, v, near_u, near_v, w, h, y, alpha, res_u, res_v);
        // sum_cells, one fine row at a time: the same additions in the same order.
        const int cell = std::min(y / 2, ch - 1);
        if (y == 2 * cell) {
            std::fill_n(cell_x, cw, 0.0f);
            std::fill_n(cell_y, cw, 0.0f);
        }
        add_pair_sums(res_u, cw, cell_x);
        add_pair_sums(res_v, cw, cell_y);
        if (w & 1) {
            cell_x[cw - 1] += res_u[w - 1];
            cell_y[cw - 1] += res_v[w - 1];
        }
        if (y == (cell < ch - 1 ? 2 * cell + 1 : h - 1)) {
            pack_row(cell_x, cell, blocks, kRhsX, C.coeffs);
            pack_row(cell_y, cell, blocks, kRhsY, C.coeffs);
        }
    }
    float* ex = coarse_.data() + 3 * cn;
    float* ey = ex + cn;
    zero_increment(C, ch);
    relax_sweeps(C, cw, ch, params_.correction_sweeps, alpha, params_.relaxation);
    merge<false>(C.du, cw, ch, C.stride, ex);
    merge<false>(C.dv, cw, ch, C.stride, ey);
    add_prolonged(ex, w, h, B.stride, B.du, tmp_.data());
    add_prolonged(ey, w, h, B.stride, B.dv, tmp_.data());
}

void DenseFlow::run(float* flow) {
    if (!flow) throw std::invalid_argument("null flow pointer");
    const int top = static_cast<int>(levels_.size()) - 1;
    const int finest = std::min(params_.finest_level, top);
    const float alpha = params_.smoothness;
    const float omega = params_.relaxation;
    Checkerboard& B = board_;
    for (int l = top; l >= finest; --l) {
        Level& L = levels_[l];
        const int w = L.w, h = L.h;
        const std::size_t n = static_cast<std::size_t>(w) * h;
        for (auto* b : {&L.prev_s, &L.next_s, &L.u, &L.v}) b->resize(n);
        const int blocks = size_board(B, w, h);
        const int stride = B.stride;
        const bool correcting = l == finest && params_.correction_sweeps > 0;
        if (correcting) grow(tensor_, 3 * n);

        if (l == top) {
            std::fill(L.u.begin(), L.u.end(), 0.0f);
            std::fill(L.v.begin(), L.v.end(), 0.0f);
        } else {
            const Level& C = levels_[l + 1];
            upsample_flow(C.u.data(), C.w, C.h, L.u.data(), w, h, 2, cols_, weights_, row_);
            upsample_flow(C.v.data(), C.w, C.h, L.v.data(), w, h, 2, cols_, weights_, row_);
        }
        // Shared buffers only grow: shrinking and regrowing would zero them each call.
        grow(tmp_, 6 * static_cast<std::size_t>(w));
        smooth_pair(L.prev.data(), L.next.data(), w, h, L.prev_s.data(), L.next_s.data(), tmp_.data());

        const int r = params_.window;
        // Rows for pack_row: whole blocks, zero past the image's width.
        const std::size_t padded_row = 2 * static_cast<std::size_t>(blocks) * kBlock;
        grow(box_rows_, 3 * padded_row + 6 * static_cast<std::size_t>(w));
        float* row_a = box_rows_.data();
        float* row_b = row_a + padded_row;
        float* row_c = row_b + padded_row;
        for (float* row : {row_a, row_b, row_c}) std::fill(row + w, row + padded_row, 0.0f);
        float* means = row_c + padded_row;  // the tensor row before inversion, unless kept in tensor_
        float* gx = means + 3 * w;          // the gradient row of prev_s being multiplied
        float* gy = gx + w;
        float* dt = gy + w;                 // and its temporal difference

        // Row y's data-term products gx * It, gy * It, It = warped next - prev
        // (temporal difference), into out and out + w.
        auto data_products = [&](int y, float* out) {
            const std::size_t row = static_cast<std::size_t>(y) * w;
            const float* p = L.prev_s.data() + row;
            detail::warp_by_flow_row(L.next_s.data(), w, h, L.u.data() + row, L.v.data() + row, y, dt);
            for (int x = 0; x < w; ++x) dt[x] -= p[x];
            for (int x = 0; x < w; ++x) {
                out[x] = gx[x] * dt[x];
                out[w + x] = gy[x] * dt[x];
            }
        };
        // Row y's box-mean data term b, then c = -b + alpha * (sum of neighbour
        // flows - count * own flow), packed; `first` is the channel of b's x part.
        auto data_rows = [&](RowBoxes& boxes, int first, int y) {
            boxes.mean(first, row_a);
            boxes.mean(first + 1, row_b);
            rhs_row(L.u.data(), w, h, y, alpha, row_a);
            rhs_row(L.v.data(), w, h, y, alpha, row_b);
            pack_row(row_a, y, blocks, kRhsX, B.coeffs);
            pack_row(row_b, y, blocks, kRhsY, B.coeffs);
        };
        // One pass down the rows for the structure tensor (box mean) plus
        // smoothness on the diagonal, inverted, and the first warp's data term:
        // five box-mean channels whose products come from the same gradient row.
        {
            RowBoxes boxes(box_ring_, box_acc_, 5, w, h, r);
            boxes.run(
                [&](int y, float* products) {
                    gradient_row(L.prev_s.data(), w, h, y, gx, gy);
                    for (int x = 0; x < w; ++x) {
                        products[x] = gx[x] * gx[x];
                        products[w + x] = gx[x] * gy[x];
                        products[2 * w + x] = gy[x] * gy[x];
                    }
                    data_products(y, products + 3 * w);
                },
                [&](int y) {
                    const std::size_t at = static_cast<std::size_t>(y) * w;
                    float* xx = correcting ? tensor_.data() + at : means;
                    float* xy = correcting ? tensor_.data() + n + at : means + w;
                    float* yy = correcting ? tensor_.data() + 2 * n + at : means + 2 * w;
                    boxes.mean(0, xx);
                    boxes.mean(1, xy);
                    boxes.mean(2, yy);
                    invert_row(xx, xy, yy, w, h, y, alpha, row_a, row_b, row_c);
                    pack_row(row_a, y, blocks, kInvA, B.coeffs);
                    pack_row(row_b, y, blocks, kInvB, B.coeffs);
                    pack_row(row_c, y, blocks, kInvC, B.coeffs);
                    data_rows(boxes, 3, y);
                });
        }
        if (correcting) build_correction_grid(w, h);

        for (int it = 0; it < params_.warps; ++it) {
            if (it > 0) {
                // Later warps: the data term again, at the updated flow.
                RowBoxes data(box_ring_, box_acc_, 2, w, h, r);
                data.run(
                    [&](int y, float* products) {
                        gradient_row(L.prev_s.data(), w, h, y, gx, gy);
                        data_products(y, products);
                    },
                    [&](int y) { data_rows(data, 0, y); });
            }
            zero_increment(B, h);
            // Coarse levels are cheap: sweep them more, so the fine level starts close.
            // (Fewer at the middle levels leaves the EPE as it is but shifts the
            // spotter's region signals enough to cost it F1 on the benchmark set.)
            const int level_sweeps = params_.sweeps * (1 << std::min(l - finest, 2));
            if (correcting) {
                // Sweeps damp the error that varies from pixel to pixel fast; the
                // half-resolution grid removes the smooth part left, where sweeps crawl.
                const int before = level_sweeps / 2;
                relax_sweeps(B, w, h, before, alpha, omega);
                correct_on_coarse_grid(w, h);
                relax_sweeps(B, w, h, level_sweeps - before, alpha, omega);
            } else {
                relax_sweeps(B, w, h, level_sweeps, alpha, omega);
            }
            if (l == 0 && it == params_.warps - 1) {
                // The full-size level's last warp: its flow goes straight into the output.
                merge_interleaved(B.du, B.dv, L.u.data(), L.v.data(), w, h, stride, flow);
                return;
            }
            merge<true>(B.du, w, h, stride, L.u.data());
            merge<true>(B.dv, w, h, stride, L.v.data());
        }
    }

    const Level& F = levels_[finest];
    const Level& full = levels_[0];
    const int w = full.w, h = full.h;
    const float* u = F.u.data();
    const float* v = F.v.data();
    if (finest == 1 && w == 2 * F.w && h == 2 * F.h) {
        grow(tmp_, static_cast<std::size_t>(F.w));
        grow(tmp2_, static_cast<std::size_t>(F.w));
        upsample2_interleaved(u, v, F.w, F.h, flow, tmp_.data(), tmp2_.data());
        return;
    }
    if (finest > 0) {
        const std::size_t n = static_cast<std::size_t>(w) * h;
        grow(tmp_, n);
        grow(tmp2_, n);
        upsample_flow(F.u.data(), F.w, F.h, tmp_.data(), w, h, 1 << finest, cols_, weights_, row_);
        upsample_flow(F.v.data(), F.w, F.h, tmp2_.data(), w, h, 1 << finest, cols_, weights_, row_);
        u = tmp_.data();
        v = tmp2_.data();
    }
    const std::size_t n = static_cast<std::size_t>(w) * h;
    std::size_t i = 0;
#if defined(__AVX2__)
    for (; i + kBlockPixels <= n; i += kBlockPixels) {
        const __m256 a = _mm256_loadu_ps(u + i), b = _mm256_loadu_ps(v + i);
        const __m256 lo = _mm256_unpacklo_ps(a, b);  // u0 v0 u1 v1 | u4 v4 u5 v5
        const __m256 hi = _mm256_unpackhi_ps(a, b);  // u2 v2 u3 v3 | u6 v6 u7 v7
        _mm256_storeu_ps(flow + 2 * i, _mm256_permute2f128_ps(lo, hi, 0x20));
        _mm256_storeu_ps(flow + 2 * i + kBlockPixels, _mm256_permute2f128_ps(lo, hi, 0x31));
    }
#endif
    for (; i < n; ++i) {
        flow[2 * i] = u[i];
        flow[2 * i + 1] = v[i];
    }
}

}  // namespace microexpr
