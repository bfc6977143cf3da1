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

// Optical strain magnitude sqrt(exx^2 + eyy^2 + 2 exy^2) of row y, with
// derivatives as numpy.gradient takes them: central inside, one-sided at the
// borders, zero along an axis of length 1.
void strain_row(const float* flow, int w, int h, int y, double* out) {
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
        out[x] = std::sqrt(ux * ux + vy * vy + 2.0 * exy * exy);
    };
    if (w == 1) {
        at(0, 0, 0, 0.0);
        return;
    }
    at(0, 0, 1, 1.0);
    for (int x = 1; x < w - 1; ++x) at(x, x - 1, x + 1, 0.5);
    at(w - 1, w - 2, w - 1, 1.0);
}

// floor((atan2(dy, dx) + pi) / bin_width) clamped to [0, bins): the bin of a
// vector's direction. A polynomial arctangent (error < 2e-6 rad) decides
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
    const int b = static_cast<int>(std::floor((std::atan2(dy, dx) + kPi) / bin_width));
    return std::clamp(b, 0, bins - 1);
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
    const double bin_width = 2.0 * kPi / B, inv_width = 1.0 / bin_width;
    std::vector<double> strain(static_cast<std::size_t>(w));
    for (int y = 0; y < h; ++y) {
        strain_row(flow, w, h, y, strain.data());
        const std::int32_t* row_labels = labels + static_cast<std::size_t>(y) * w;
        // Regions come in runs along a row: sum each run in registers.
        for (int x = 0; x < w;) {
            const int k = row_labels[x];
            int end = x + 1;
            while (end < w && row_labels[end] == k) ++end;
            if (k < 0) {
                x = end;
                continue;
            }
            const int start = x;
            double run_mag = 0.0, run_x = 0.0, run_y = 0.0, run_strain = 0.0;
            std::size_t* bins_k = &bin_count[static_cast<std::size_t>(k) * B];
            for (; x < end; ++x) {
                const std::size_t i = static_cast<std::size_t>(y) * w + x;
                const double dx = flow[2 * i] - ref_x, dy = flow[2 * i + 1] - ref_y;
                const double m = std::sqrt(dx * dx + dy * dy);
                const int b = direction_bin(dx, dy, bin_width, inv_width, B);
                run_mag += m;
                run_x += dx;
                run_y += dy;
                run_strain += strain[x];
                mag[i] = static_cast<float>(m);
                bin[i] = b;
                ++bins_k[b];
            }
            count[k] += end - start;
            sum_mag[k] += run_mag;
            sum_x[k] += run_x;
            sum_y[k] += run_y;
            sum_strain[k] += run_strain;
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
