// Per-region statistics of a flow field: magnitude, mean vector, the MDMD
// feature (main directional mean magnitude) and optical strain.
#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "microexpr/core.hpp"

namespace microexpr {

namespace {

constexpr double kPi = 3.14159265358979323846;

#if defined(__AVX2__)
// Four (u, v) float pairs from p as doubles, u and v apart, in order.
inline void load_pairs(const float* p, __m256d& u, __m256d& v) {
    const __m256 uv = _mm256_loadu_ps(p);  // u0 v0 u1 v1 u2 v2 u3 v3
    const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(uv));
    const __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(uv, 1));
    // unpack gives the order 0 2 1 3; the permute restores 0 1 2 3.
    u = _mm256_permute4x64_pd(_mm256_unpacklo_pd(lo, hi), 0xD8);
    v = _mm256_permute4x64_pd(_mm256_unpackhi_pd(lo, hi), 0xD8);
}
#endif

// Optical strain magnitude sqrt(exx^2 + eyy^2 + 2 exy^2) of row y from
// column x0 to x1 (exclusive) into out[0, x1 - x0), with derivatives as
// numpy.gradient takes them: central inside, one-sided at the borders, zero
// along an axis of length 1.
void strain_span(const float* flow, int w, int h, int y, int x0, int x1, double* out) {
    const float* r = flow + 2 * (static_cast<std::ptrdiff_t>(y) * w);
    const float* up = y > 0 ? r - 2 * w : r;
    const float* dn = y < h - 1 ? r + 2 * w : r;
    const double sy = h == 1 ? 0.0 : (y > 0 && y < h - 1 ? 0.5 : 1.0);
    auto at = [&](int x, int xl, int xr, double sx) {
        const double ux = sx * (static_cast<double>(r[2 * xr]) - r[2 * xl]);
        const double vx = sx * (static_cast<double>(r[2 * xr + 1]) - r[2 * xl + 1]);
        const double uy = sy * (static_cast<double>(dn[2 * x]) - up[2 * x]);
        const double vy = sy * (static_cast<double>(dn[2 * x + 1]) - up[2 * x + 1]);
        const double exy = 0.5 * (uy + vx);
        out[x - x0] = std::sqrt(ux * ux + vy * vy + 2.0 * exy * exy);
    };
    if (w == 1) {
        at(0, 0, 0, 0.0);
        return;
    }
    int x = x0;
    if (x == 0) at(x++, 0, 1, 1.0);
    const int inner_end = std::min(x1, w - 1);
#if defined(__AVX2__)
    const __m256d half = _mm256_set1_pd(0.5), vsy = _mm256_set1_pd(sy), two = _mm256_set1_pd(2.0);
    for (; x + 4 <= inner_end; x += 4) {
        __m256d ul, vl, ur, vr, uu, vu, ud, vd;
        load_pairs(r + 2 * (x - 1), ul, vl);
        load_pairs(r + 2 * (x + 1), ur, vr);
        load_pairs(up + 2 * x, uu, vu);
        load_pairs(dn + 2 * x, ud, vd);
        const __m256d ux = _mm256_mul_pd(half, _mm256_sub_pd(ur, ul));
        const __m256d vx = _mm256_mul_pd(half, _mm256_sub_pd(vr, vl));
        const __m256d uy = _mm256_mul_pd(vsy, _mm256_sub_pd(ud, uu));
        const __m256d vy = _mm256_mul_pd(vsy, _mm256_sub_pd(vd, vu));
        const __m256d exy = _mm256_mul_pd(half, _mm256_add_pd(uy, vx));
        const __m256d sq = _mm256_add_pd(_mm256_add_pd(_mm256_mul_pd(ux, ux), _mm256_mul_pd(vy, vy)),
                                         _mm256_mul_pd(two, _mm256_mul_pd(exy, exy)));
        _mm256_storeu_pd(out + (x - x0), _mm256_sqrt_pd(sq));
    }
#endif
    for (; x < inner_end; ++x) at(x, x - 1, x + 1, 0.5);
    if (x < x1) at(w - 1, w - 2, w - 1, 1.0);
}

// floor((atan2(dy, dx) + pi) / bin_width) clamped to [0, bins): the bin of a
// vector's direction, from the library atan2.
int atan2_bin(double dx, double dy, double bin_width, int bins) {
    const int b = static_cast<int>(std::floor((std::atan2(dy, dx) + kPi) / bin_width));
    return std::clamp(b, 0, bins - 1);
}

// atan2_bin through a polynomial arctangent (error < 2e-6 rad), which decides
// unless the vector lies within 1e-5 rad of a bin edge or an axis; those
// take the library atan2, so bins match it exactly.
int direction_bin(double dx, double dy, double bin_width, double inv_width, int bins) {
    const double ax = std::fabs(dx), ay = std::fabs(dy);
    const double lo = std::min(ax, ay), hi = std::max(ax, ay);
    if (lo > 0.0) {
        const double z = lo / hi, z2 = z * z;
        double a = z * (0.99997726 + z2 * (-0.33262347 + z2 * (0.19354346 + z2 * (-0.11643287 +
                   z2 * (0.05265332 + z2 * -0.01172120)))));
        // Selects rather than branches: directions are random across pixels.
        a = ay > ax ? 0.5 * kPi - a : a;
        a = dx < 0.0 ? kPi - a : a;
        a = std::copysign(a, dy);
        const double t = (a + kPi) * inv_width;
        const double edge = t - std::floor(t);
        const double margin = 1e-5 * inv_width;
        if (edge > margin && edge < 1.0 - margin)
            return std::clamp(static_cast<int>(std::floor(t)), 0, bins - 1);
    }
    return atan2_bin(dx, dy, bin_width, bins);
}

// Magnitude and direction bin of every vector of a flow row, less the
// reference vector. Four vectors at a time as in direction_bin; the few it
// leaves undecided are marked -1 and binned by atan2 after the loop.
void direction_row(const float* row, int w, double ref_x, double ref_y, double bin_width,
                   double inv_width, int bins, double* mag, int* bin) {
    int x = 0;
#if defined(__AVX2__)
    const __m256d sign = _mm256_set1_pd(-0.0), zero = _mm256_setzero_pd();
    const __m256d rx = _mm256_set1_pd(ref_x), ry = _mm256_set1_pd(ref_y);
    const __m256d pi = _mm256_set1_pd(kPi), half_pi = _mm256_set1_pd(0.5 * kPi);
    const __m256d inv = _mm256_set1_pd(inv_width), one = _mm256_set1_pd(1.0);
    const __m256d margin = _mm256_set1_pd(1e-5 * inv_width);
    const __m128i last = _mm_set1_epi32(bins - 1), undecided = _mm_set1_epi32(-1);
    const double c[6] = {0.99997726, -0.33262347, 0.19354346, -0.11643287, 0.05265332, -0.01172120};
    for (; x + 4 <= w; x += 4) {
        __m256d u, v;
        load_pairs(row + 2 * x, u, v);
        const __m256d dx = _mm256_sub_pd(u, rx), dy = _mm256_sub_pd(v, ry);
        _mm256_storeu_pd(mag + x, _mm256_sqrt_pd(_mm256_add_pd(_mm256_mul_pd(dx, dx), _mm256_mul_pd(dy, dy))));
        const __m256d ax = _mm256_andnot_pd(sign, dx), ay = _mm256_andnot_pd(sign, dy);
        const __m256d lo = _mm256_min_pd(ax, ay), hi = _mm256_max_pd(ax, ay);
        const __m256d z = _mm256_div_pd(lo, hi), z2 = _mm256_mul_pd(z, z);
        __m256d a = _mm256_set1_pd(c[5]);
        for (int j = 4; j >= 0; --j) a = _mm256_add_pd(_mm256_set1_pd(c[j]), _mm256_mul_pd(z2, a));
        a = _mm256_mul_pd(z, a);
        a = _mm256_blendv_pd(a, _mm256_sub_pd(half_pi, a), _mm256_cmp_pd(ay, ax, _CMP_GT_OQ));
        a = _mm256_blendv_pd(a, _mm256_sub_pd(pi, a), _mm256_cmp_pd(dx, zero, _CMP_LT_OQ));
        a = _mm256_or_pd(_mm256_andnot_pd(sign, a), _mm256_and_pd(sign, dy));
        const __m256d t = _mm256_mul_pd(_mm256_add_pd(a, pi), inv);
        const __m256d floor_t = _mm256_floor_pd(t);
        const __m256d edge = _mm256_sub_pd(t, floor_t);
        const __m256d decided = _mm256_and_pd(
            _mm256_cmp_pd(lo, zero, _CMP_GT_OQ),
            _mm256_and_pd(_mm256_cmp_pd(edge, margin, _CMP_GT_OQ),
                          _mm256_cmp_pd(edge, _mm256_sub_pd(one, margin), _CMP_LT_OQ)));
        const __m128i b = _mm_min_epi32(_mm_max_epi32(_mm256_cvttpd_epi32(floor_t), _mm_setzero_si128()), last);
        const __m128i keep = _mm256_cvtpd_epi32(_mm256_and_pd(decided, one));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(bin + x), _mm_blendv_epi8(undecided, b, _mm_sub_epi32(_mm_setzero_si128(), keep)));
    }
    for (int j = 0; j < x; ++j)
        if (bin[j] < 0) bin[j] = atan2_bin(row[2 * j] - ref_x, row[2 * j + 1] - ref_y, bin_width, bins);
#endif
    for (; x < w; ++x) {
        const double dx = row[2 * x] - ref_x, dy = row[2 * x + 1] - ref_y;
        mag[x] = std::sqrt(dx * dx + dy * dy);
        bin[x] = direction_bin(dx, dy, bin_width, inv_width, bins);
    }
}

// Every label below n_regions and every flow component finite.
bool all_valid(const float* flow, const std::int32_t* labels, std::size_t n, int n_regions) {
    std::size_t i = 0;
    bool valid = true;
#if defined(__AVX2__)
    // A float is not finite when its exponent bits are all set.
    const __m256i exponent = _mm256_set1_epi32(0x7f800000);
    __m256i top = _mm256_set1_epi32(-1), bad = _mm256_setzero_si256();
    for (; i + 8 <= n; i += 8) {
        top = _mm256_max_epi32(top, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(labels + i)));
        const __m256i f0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(flow + 2 * i));
        const __m256i f1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(flow + 2 * i + 8));
        bad = _mm256_or_si256(bad, _mm256_cmpeq_epi32(_mm256_and_si256(f0, exponent), exponent));
        bad = _mm256_or_si256(bad, _mm256_cmpeq_epi32(_mm256_and_si256(f1, exponent), exponent));
    }
    bad = _mm256_or_si256(bad, _mm256_cmpgt_epi32(top, _mm256_set1_epi32(n_regions - 1)));
    valid = _mm256_testz_si256(bad, bad);
#endif
    for (; i < n; ++i)
        valid = valid && labels[i] < n_regions && std::isfinite(flow[2 * i]) && std::isfinite(flow[2 * i + 1]);
    return valid;
}

// Names the first pixel with a label >= n_regions or a non-finite flow
// component; called once a check has found one.
[[noreturn]] void throw_first_invalid(const float* flow, const std::int32_t* labels, std::size_t n, int n_regions) {
    for (std::size_t i = 0; i < n; ++i) {
        if (labels[i] >= n_regions)
            throw std::invalid_argument("label " + std::to_string(labels[i]) + " at pixel " + std::to_string(i) +
                                        " is not below n_regions=" + std::to_string(n_regions));
        if (!std::isfinite(flow[2 * i]) || !std::isfinite(flow[2 * i + 1]))
            throw std::invalid_argument("flow is not finite at pixel " + std::to_string(i));
    }
    throw std::logic_error("region_stats: invalid input not found");
}

// One past the last pixel of the run of equal labels that starts at x.
int run_end(const std::int32_t* row_labels, int x, int w) {
    const std::int32_t k = row_labels[x];
    int end = x + 1;
#if defined(__AVX2__)
    const __m256i label = _mm256_set1_epi32(k);
    for (; end + 8 <= w; end += 8) {
        const __m256i same = _mm256_cmpeq_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row_labels + end)), label);
        // The run ends inside these eight; the scalar loop finds where.
        if (_mm256_movemask_ps(_mm256_castsi256_ps(same)) != 0xFF) break;
    }
#endif
    while (end < w && row_labels[end] == k) ++end;
    return end;
}

// A stretch of one row where every pixel carries the same region label.
struct Run {
    int y, x0, x1, label;
};

}  // namespace

void region_stats(const float* flow, const std::int32_t* labels, int w, int h, int n_regions,
                  int reference, double top_fraction, int direction_bins, double* out) {
    if (!flow || !labels || !out) throw std::invalid_argument("null pointer");
    if (w < 1 || h < 1) throw std::invalid_argument("flow field is empty");
    if (n_regions < 1) throw std::invalid_argument("n_regions must be >= 1, got " + std::to_string(n_regions));
    if (reference >= n_regions)
        throw std::invalid_argument("reference region " + std::to_string(reference) +
                                    " is not below n_regions=" + std::to_string(n_regions));
    if (!(top_fraction > 0.0 && top_fraction <= 1.0))
        throw std::invalid_argument("top_fraction must be in (0, 1]");
    if (direction_bins < 1 || direction_bins > 360)
        throw std::invalid_argument("direction_bins must be in [1, 360]");
    const std::size_t n = static_cast<std::size_t>(w) * h;
    // First pass: check each row and cut its labelled pixels into runs.
    std::vector<Run> runs;
    std::size_t labelled = 0;
    for (int y = 0; y < h; ++y) {
        const std::size_t row = static_cast<std::size_t>(y) * w;
        if (!all_valid(flow + 2 * row, labels + row, static_cast<std::size_t>(w), n_regions))
            throw_first_invalid(flow, labels, n, n_regions);
        for (int x = 0; x < w;) {
            const int end = run_end(labels + row, x, w);
            if (labels[row + x] >= 0) {
                runs.push_back({y, x, end, labels[row + x]});
                labelled += static_cast<std::size_t>(end - x);
            }
            x = end;
        }
    }

    double ref_x = 0.0, ref_y = 0.0;
    if (reference >= 0) {
        double sx = 0, sy = 0;
        std::size_t c = 0;
        for (const Run& run : runs) {
            if (run.label != reference) continue;
            const float* p = flow + 2 * (static_cast<std::size_t>(run.y) * w);
            for (int x = run.x0; x < run.x1; ++x) { sx += p[2 * x]; sy += p[2 * x + 1]; }
            c += static_cast<std::size_t>(run.x1 - run.x0);
        }
        if (c > 0) { ref_x = sx / c; ref_y = sy / c; }
    }

    // Second pass, over the runs only: sums, direction histograms, and each
    // labelled pixel's magnitude and bin in run order for the MDMD.
    const int R = n_regions, B = direction_bins;
    std::vector<double> count(R, 0), sum_mag(R, 0), sum_x(R, 0), sum_y(R, 0), sum_strain(R, 0);
    std::vector<std::size_t> bin_count(static_cast<std::size_t>(R) * B, 0);
    std::vector<float> mag(labelled);
    std::vector<int> bin(labelled);
    const double bin_width = 2.0 * kPi / B, inv_width = 1.0 / bin_width;
    std::vector<double> strain(static_cast<std::size_t>(w)), run_mag(static_cast<std::size_t>(w));
    std::size_t p = 0;
    for (const Run& run : runs) {
        const int len = run.x1 - run.x0;
        const float* f = flow + 2 * (static_cast<std::size_t>(run.y) * w + run.x0);
        strain_span(flow, w, h, run.y, run.x0, run.x1, strain.data());
        direction_row(f, len, ref_x, ref_y, bin_width, inv_width, B, run_mag.data(), bin.data() + p);
        double s_mag = 0.0, s_x = 0.0, s_y = 0.0, s_strain = 0.0;
        std::size_t* bins_k = &bin_count[static_cast<std::size_t>(run.label) * B];
        for (int j = 0; j < len; ++j) {
            s_mag += run_mag[j];
            s_x += f[2 * j] - ref_x;
            s_y += f[2 * j + 1] - ref_y;
            s_strain += strain[j];
            mag[p + j] = static_cast<float>(run_mag[j]);
            ++bins_k[bin[p + j]];
        }
        p += static_cast<std::size_t>(len);
        const int k = run.label;
        count[k] += len;
        sum_mag[k] += s_mag;
        sum_x[k] += s_x;
        sum_y[k] += s_y;
        sum_strain[k] += s_strain;
    }

    const double nan = std::numeric_limits<double>::quiet_NaN();
    // The dominant bin's magnitudes of every region, side by side in one buffer.
    std::vector<int> dominant(R, 0);
    std::vector<std::size_t> first(static_cast<std::size_t>(R) + 1, 0);
    for (int k = 0; k < R; ++k) {
        const std::size_t* bc = &bin_count[static_cast<std::size_t>(k) * B];
        dominant[k] = static_cast<int>(std::max_element(bc, bc + B) - bc);
        first[k + 1] = first[k] + bc[dominant[k]];
    }
    std::vector<float> members(first[R]);
    std::vector<std::size_t> next(first.begin(), first.end() - 1);
    p = 0;
    for (const Run& run : runs) {
        const int k = run.label, d = dominant[k];
        for (std::size_t end = p + static_cast<std::size_t>(run.x1 - run.x0); p < end; ++p)
            if (bin[p] == d) members[next[k]++] = mag[p];
    }
    for (int k = 0; k < R; ++k) {
        double* row = out + static_cast<std::size_t>(k) * kRegionColumns;
        row[kCount] = count[k];
        if (count[k] == 0) {
            for (int c = 1; c < kRegionColumns; ++c) row[c] = nan;
            continue;
        }
        row[kMeanMagnitude] = sum_mag[k] / count[k];
        row[kMeanDx] = sum_x[k] / count[k];
        row[kMeanDy] = sum_y[k] / count[k];
        float* mv = members.data() + first[k];
        const std::size_t m = first[k + 1] - first[k];
        const std::size_t top = std::max<std::size_t>(
            1, static_cast<std::size_t>(std::ceil(top_fraction * static_cast<double>(m) - 1e-9)));
        // Only which values are the top ones matters, not their order.
        std::nth_element(mv, mv + (top - 1), mv + m, std::greater<float>());
        double s = 0;
        for (std::size_t j = 0; j < top; ++j) s += mv[j];
        row[kMainDirectionMagnitude] = s / static_cast<double>(top);
        row[kMainDirection] = -kPi + (dominant[k] + 0.5) * bin_width;
        row[kMeanStrain] = sum_strain[k] / count[k];
    }
}

}  // namespace microexpr
