// Per-region statistics of a flow field: magnitude, mean vector, the MDMD
// feature (main directional mean magnitude) and optical strain.
#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "microexpr/core.hpp"

namespace microexpr {

namespace {

constexpr double kPi = 3.14159265358979323846;

// numpy.gradient convention: central inside, one-sided at the borders.
inline double diff_x(const float* f, int w, int x, int y, int c) {
    const float* r = f + 2 * (static_cast<std::ptrdiff_t>(y) * w);
    if (w == 1) return 0.0;
    if (x == 0) return static_cast<double>(r[2 * 1 + c]) - r[c];
    if (x == w - 1) return static_cast<double>(r[2 * x + c]) - r[2 * (x - 1) + c];
    return 0.5 * (static_cast<double>(r[2 * (x + 1) + c]) - r[2 * (x - 1) + c]);
}

inline double diff_y(const float* f, int w, int h, int x, int y, int c) {
    auto at = [&](int yy) { return static_cast<double>(f[2 * (static_cast<std::ptrdiff_t>(yy) * w + x) + c]); };
    if (h == 1) return 0.0;
    if (y == 0) return at(1) - at(0);
    if (y == h - 1) return at(y) - at(y - 1);
    return 0.5 * (at(y + 1) - at(y - 1));
}

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
    for (std::size_t i = 0; i < n; ++i) {
        if (labels[i] >= n_regions)
            throw std::invalid_argument("label " + std::to_string(labels[i]) + " at pixel " +
                                        std::to_string(i) + " is not below n_regions=" +
                                        std::to_string(n_regions));
        if (!std::isfinite(flow[2 * i]) || !std::isfinite(flow[2 * i + 1]))
            throw std::invalid_argument("flow is not finite at pixel " + std::to_string(i));
    }

    double ref_x = 0.0, ref_y = 0.0;
    if (reference >= 0) {
        double sx = 0, sy = 0;
        std::size_t c = 0;
        for (std::size_t i = 0; i < n; ++i)
            if (labels[i] == reference) { sx += flow[2 * i]; sy += flow[2 * i + 1]; ++c; }
        if (c > 0) { ref_x = sx / c; ref_y = sy / c; }
    }

    const int R = n_regions, B = direction_bins;
    std::vector<double> count(R, 0), sum_mag(R, 0), sum_x(R, 0), sum_y(R, 0), sum_strain(R, 0);
    std::vector<std::size_t> bin_count(static_cast<std::size_t>(R) * B, 0);
    std::vector<float> mag(n);
    std::vector<int> bin(n);
    const double bin_width = 2.0 * kPi / B;
    for (int y = 0; y < h; ++y) {
        for (int x = 0; x < w; ++x) {
            const std::size_t i = static_cast<std::size_t>(y) * w + x;
            const int k = labels[i];
            if (k < 0) continue;
            const double dx = flow[2 * i] - ref_x, dy = flow[2 * i + 1] - ref_y;
            const double m = std::sqrt(dx * dx + dy * dy);
            int b = static_cast<int>(std::floor((std::atan2(dy, dx) + kPi) / bin_width));
            b = std::clamp(b, 0, B - 1);
            const double exx = diff_x(flow, w, x, y, 0), eyy = diff_y(flow, w, h, x, y, 1);
            const double exy = 0.5 * (diff_y(flow, w, h, x, y, 0) + diff_x(flow, w, x, y, 1));
            count[k] += 1;
            sum_mag[k] += m;
            sum_x[k] += dx;
            sum_y[k] += dy;
            sum_strain[k] += std::sqrt(exx * exx + eyy * eyy + 2.0 * exy * exy);
            mag[i] = static_cast<float>(m);
            bin[i] = b;
            ++bin_count[static_cast<std::size_t>(k) * B + b];
        }
    }

    const double nan = std::numeric_limits<double>::quiet_NaN();
    std::vector<int> dominant(R, 0);
    std::vector<std::vector<float>> members(R);
    for (int k = 0; k < R; ++k) {
        const std::size_t* bc = &bin_count[static_cast<std::size_t>(k) * B];
        dominant[k] = static_cast<int>(std::max_element(bc, bc + B) - bc);
        members[k].reserve(bc[dominant[k]]);
    }
    for (std::size_t i = 0; i < n; ++i) {
        const int k = labels[i];
        if (k >= 0 && bin[i] == dominant[k]) members[k].push_back(mag[i]);
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
        auto& mv = members[k];
        const std::size_t top = std::max<std::size_t>(
            1, static_cast<std::size_t>(std::ceil(top_fraction * static_cast<double>(mv.size()) - 1e-9)));
        std::nth_element(mv.begin(), mv.begin() + (top - 1), mv.end(), std::greater<float>());
        double s = 0;
        std::sort(mv.begin(), mv.begin() + top, std::greater<float>());
        for (std::size_t j = 0; j < top; ++j) s += mv[j];
        row[kMainDirectionMagnitude] = s / static_cast<double>(top);
        row[kMainDirection] = -kPi + (dominant[k] + 0.5) * bin_width;
        row[kMeanStrain] = sum_strain[k] / count[k];
    }
}

}  // namespace microexpr
