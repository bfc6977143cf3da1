// Dense optical flow for aligned face crops.
//
// Combined local-global flow (Bruhn et al. 2005): a structure tensor summed
// over a small box (the Lucas-Kanade data term) plus a first-order smoothness
// term (Horn-Schunck), solved coarse to fine. At each level the linearisation
// uses the gradient of the first image (inverse compositional, as DIS does),
// so the per-pixel 2x2 system is inverted once per level and each warp only
// re-samples the second image. Red-black Gauss-Seidel sweeps keep the result
// independent of any threading of the loops. The reference implementation in
// microexpr/reference.py follows this file step by step.
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <type_traits>

#include "microexpr/core.hpp"
#include "microexpr/detail.hpp"

namespace microexpr {

namespace {

// 2x2 mean downsampling; the coarse image is floor(w/2) x floor(h/2).
void downsample(const float* src, int w, float* dst, int cw, int ch) {
    for (int y = 0; y < ch; ++y) {
        const float* r0 = src + static_cast<std::ptrdiff_t>(2 * y) * w;
        const float* r1 = r0 + w;
        float* d = dst + static_cast<std::ptrdiff_t>(y) * cw;
        for (int x = 0; x < cw; ++x)
            d[x] = 0.25f * ((r0[2 * x] + r0[2 * x + 1]) + (r1[2 * x] + r1[2 * x + 1]));
    }
}

// Separable [1 2 1] / 4 smoothing with replicated borders.
void smooth3(const float* src, int w, int h, float* dst, float* tmp) {
    for (int y = 0; y < h; ++y) {
        const float* s = src + static_cast<std::ptrdiff_t>(y) * w;
        float* t = tmp + static_cast<std::ptrdiff_t>(y) * w;
        if (w == 1) { t[0] = s[0]; continue; }
        t[0] = 0.25f * (3.0f * s[0] + s[1]);
        for (int x = 1; x < w - 1; ++x) t[x] = 0.25f * ((s[x - 1] + s[x + 1]) + 2.0f * s[x]);
        t[w - 1] = 0.25f * (3.0f * s[w - 1] + s[w - 2]);
    }
    for (int y = 0; y < h; ++y) {
        const float* up = tmp + static_cast<std::ptrdiff_t>(std::max(y - 1, 0)) * w;
        const float* mid = tmp + static_cast<std::ptrdiff_t>(y) * w;
        const float* dn = tmp + static_cast<std::ptrdiff_t>(std::min(y + 1, h - 1)) * w;
        float* d = dst + static_cast<std::ptrdiff_t>(y) * w;
        for (int x = 0; x < w; ++x) d[x] = 0.25f * ((up[x] + dn[x]) + 2.0f * mid[x]);
    }
}

// Central differences inside, one-sided at the borders (numpy.gradient).
void gradient(const float* s, int w, int h, float* ix, float* iy) {
    for (int y = 0; y < h; ++y) {
        const float* r = s + static_cast<std::ptrdiff_t>(y) * w;
        float* gx = ix + static_cast<std::ptrdiff_t>(y) * w;
        gx[0] = r[1] - r[0];
        for (int x = 1; x < w - 1; ++x) gx[x] = 0.5f * (r[x + 1] - r[x - 1]);
        gx[w - 1] = r[w - 1] - r[w - 2];
        const float* up = s + static_cast<std::ptrdiff_t>(std::max(y - 1, 0)) * w;
        const float* dn = s + static_cast<std::ptrdiff_t>(std::min(y + 1, h - 1)) * w;
        const float scale = (y == 0 || y == h - 1) ? 1.0f : 0.5f;
        float* gy = iy + static_cast<std::ptrdiff_t>(y) * w;
        for (int x = 0; x < w; ++x) gy[x] = scale * (dn[x] - up[x]);
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
        for (int x = 0; x < sw - 1; ++x) {
            d[2 * x + 1] = 0.75f * row[x] + 0.25f * row[x + 1];
            d[2 * x + 2] = 0.25f * row[x] + 0.75f * row[x + 1];
        }
        d[dw - 1] = row[sw - 1];
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

// out = image - mean, divided by its standard deviation: removes global gain
// and offset changes between the two frames.
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

template <typename T>
void standardise(const T* src, int w, int h, std::ptrdiff_t stride, float* dst) {
    double sum, sq;
    moments(src, w, h, stride, sum, sq);
    const double n = static_cast<double>(w) * h;
    const double mean = sum / n;
    const double var = std::max(sq / n - mean * mean, 0.0);
    const double sd = std::sqrt(var);
    const double inv = sd > 1e-6 ? 1.0 / sd : 1.0;
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

}  // namespace

FlowParams flow_preset(const std::string& name) {
    FlowParams p;
    // Tuned on microexpr.flowtruth face crops (bench/compare_opencv.py).
    if (name == "fast") {
        p.levels = 2; p.finest_level = 2; p.warps = 2; p.sweeps = 4; p.window = 2;
        p.smoothness = 0.03f; p.relaxation = 1.9f;
    } else if (name == "balanced") {
        p.levels = 4; p.finest_level = 0; p.warps = 1; p.sweeps = 6; p.window = 3;
        p.smoothness = 0.015f; p.relaxation = 1.9f;
    } else if (name == "accurate") {
        p.levels = 4; p.finest_level = 0; p.warps = 2; p.sweeps = 10; p.window = 3;
        p.smoothness = 0.015f; p.relaxation = 1.9f;
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
    int lw = w, lh = h;
    for (auto& L : levels_) {
        L.w = lw;
        L.h = lh;
        const std::size_t n = static_cast<std::size_t>(lw) * lh;
        L.prev.resize(n);
        L.next.resize(n);
        lw /= 2;
        lh /= 2;
    }
    standardise(prev, w, h, stride, levels_[0].prev.data());
    standardise(next, w, h, stride, levels_[0].next.data());
    if (params_.highpass > 0) {
        // Local mean removal: a lighting gradient that changes between the
        // frames would otherwise read as motion.
        const std::size_t n = static_cast<std::size_t>(w) * h;
        tmp_.resize(n);
        box_acc_.resize(static_cast<std::size_t>(w));
        for (auto* img : {&levels_[0].prev, &levels_[0].next}) {
            detail::box_mean(img->data(), w, h, params_.highpass, tmp_.data(), box_acc_.data());
            for (std::size_t i = 0; i < n; ++i) (*img)[i] -= tmp_[i];
        }
    }
    for (std::size_t l = 1; l < levels_.size(); ++l) {
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

void DenseFlow::run(float* flow) {
    if (!flow) throw std::invalid_argument("null flow pointer");
    const int top = static_cast<int>(levels_.size()) - 1;
    const int finest = std::min(params_.finest_level, top);
    const float alpha = params_.smoothness;
    const float omega = params_.relaxation;
    for (int l = top; l >= finest; --l) {
        Level& L = levels_[l];
        const int w = L.w, h = L.h;
        const std::size_t n = static_cast<std::size_t>(w) * h;
        for (auto* b : {&L.prev_s, &L.next_s, &L.ix, &L.iy, &L.inv_a, &L.inv_b, &L.inv_c, &L.u,
                        &L.v, &L.du, &L.dv, &L.cx, &L.cy})
            b->resize(n);
        tmp_.resize(n);
        tmp2_.resize(n);
        box_acc_.resize(static_cast<std::size_t>(w));

        if (l == top) {
            std::fill(L.u.begin(), L.u.end(), 0.0f);
            std::fill(L.v.begin(), L.v.end(), 0.0f);
        } else {
            const Level& C = levels_[l + 1];
            upsample_flow(C.u.data(), C.w, C.h, L.u.data(), w, h, 2, cols_, weights_, row_);
            upsample_flow(C.v.data(), C.w, C.h, L.v.data(), w, h, 2, cols_, weights_, row_);
        }
        smooth3(L.prev.data(), w, h, L.prev_s.data(), tmp_.data());
        smooth3(L.next.data(), w, h, L.next_s.data(), tmp_.data());
        gradient(L.prev_s.data(), w, h, L.ix.data(), L.iy.data());

        // Structure tensor (box mean) plus smoothness on the diagonal, inverted.
        const int r = params_.window;
        for (std::size_t i = 0; i < n; ++i) tmp_[i] = L.ix[i] * L.ix[i];
        detail::box_mean(tmp_.data(), w, h, r, L.inv_a.data(), box_acc_.data());
        for (std::size_t i = 0; i < n; ++i) tmp_[i] = L.ix[i] * L.iy[i];
        detail::box_mean(tmp_.data(), w, h, r, L.inv_b.data(), box_acc_.data());
        for (std::size_t i = 0; i < n; ++i) tmp_[i] = L.iy[i] * L.iy[i];
        detail::box_mean(tmp_.data(), w, h, r, L.inv_c.data(), box_acc_.data());
        for (int y = 0; y < h; ++y) {
            const int ny = (y > 0) + (y < h - 1);
            for (int x = 0; x < w; ++x) {
                const std::size_t i = static_cast<std::size_t>(y) * w + x;
                const float reg = alpha * static_cast<float>(ny + (x > 0) + (x < w - 1));
                const float jxx = L.inv_a[i] + reg, jxy = L.inv_b[i], jyy = L.inv_c[i] + reg;
                const float inv_det = 1.0f / (jxx * jyy - jxy * jxy);
                L.inv_a[i] = jyy * inv_det;
                L.inv_b[i] = -jxy * inv_det;
                L.inv_c[i] = jxx * inv_det;
            }
        }

        for (int it = 0; it < params_.warps; ++it) {
            // tmp_ = warped next - prev (temporal difference); b = box(grad * It).
            detail::warp_by_flow(L.next_s.data(), w, h, L.u.data(), L.v.data(), tmp_.data());
            for (std::size_t i = 0; i < n; ++i) tmp_[i] -= L.prev_s[i];
            for (std::size_t i = 0; i < n; ++i) tmp2_[i] = L.ix[i] * tmp_[i];
            detail::box_mean(tmp2_.data(), w, h, r, L.cx.data(), box_acc_.data());
            for (std::size_t i = 0; i < n; ++i) tmp2_[i] = L.iy[i] * tmp_[i];
            detail::box_mean(tmp2_.data(), w, h, r, L.cy.data(), box_acc_.data());
            // c = -b + alpha * (sum of neighbour flows - count * own flow).
            auto rhs = [&](int x, int y, bool border) {
                const std::size_t i = static_cast<std::size_t>(y) * w + x;
                const float* u = L.u.data();
                const float* v = L.v.data();
                float su, sv, k;
                if (border) {
                    su = 0.0f; sv = 0.0f; k = 0.0f;
                    if (x > 0) { su += u[i - 1]; sv += v[i - 1]; k += 1.0f; }
                    if (x < w - 1) { su += u[i + 1]; sv += v[i + 1]; k += 1.0f; }
                    if (y > 0) { su += u[i - w]; sv += v[i - w]; k += 1.0f; }
                    if (y < h - 1) { su += u[i + w]; sv += v[i + w]; k += 1.0f; }
                } else {
                    su = (u[i - 1] + u[i + 1]) + (u[i - w] + u[i + w]);
                    sv = (v[i - 1] + v[i + 1]) + (v[i - w] + v[i + w]);
                    k = 4.0f;
                }
                L.cx[i] = -L.cx[i] + alpha * (su - k * u[i]);
                L.cy[i] = -L.cy[i] + alpha * (sv - k * v[i]);
            };
            for (int y = 0; y < h; ++y) {
                const bool edge_row = y == 0 || y == h - 1;
                rhs(0, y, true);
                for (int x = 1; x < w - 1; ++x) rhs(x, y, edge_row);
                rhs(w - 1, y, true);
            }
            std::fill(L.du.begin(), L.du.end(), 0.0f);
            std::fill(L.dv.begin(), L.dv.end(), 0.0f);
            float* du = L.du.data();
            float* dv = L.dv.data();
            const float* ia = L.inv_a.data();
            const float* ib = L.inv_b.data();
            const float* ic = L.inv_c.data();
            const float* cx = L.cx.data();
            const float* cy = L.cy.data();
            // SOR update of one pixel; `border` pixels check their neighbours.
            auto relax = [&](int x, int y, bool border) {
                const std::size_t i = static_cast<std::size_t>(y) * w + x;
                float su, sv;
                if (border) {
                    su = 0.0f; sv = 0.0f;
                    if (x > 0) { su += du[i - 1]; sv += dv[i - 1]; }
                    if (x < w - 1) { su += du[i + 1]; sv += dv[i + 1]; }
                    if (y > 0) { su += du[i - w]; sv += dv[i - w]; }
                    if (y < h - 1) { su += du[i + w]; sv += dv[i + w]; }
                } else {
                    su = (du[i - 1] + du[i + 1]) + (du[i - w] + du[i + w]);
                    sv = (dv[i - 1] + dv[i + 1]) + (dv[i - w] + dv[i + w]);
                }
                const float rx = cx[i] + alpha * su;
                const float ry = cy[i] + alpha * sv;
                du[i] += omega * ((ia[i] * rx + ib[i] * ry) - du[i]);
                dv[i] += omega * ((ib[i] * rx + ic[i] * ry) - dv[i]);
            };
            // Coarse levels are cheap: sweep them more, so the fine level starts close.
            const int level_sweeps = params_.sweeps * (1 << std::min(l - finest, 2));
            for (int s = 0; s < level_sweeps; ++s) {
                for (int colour = 0; colour < 2; ++colour) {
                    for (int y = 0; y < h; ++y) {
                        int x = (y + colour) & 1;
                        if (y == 0 || y == h - 1) {
                            for (; x < w; x += 2) relax(x, y, true);
                            continue;
                        }
                        if (x == 0) { relax(0, y, true); x = 2; }
                        for (; x < w - 1; x += 2) relax(x, y, false);
                        if (x == w - 1) relax(x, y, true);
                    }
                }
            }
            for (std::size_t i = 0; i < n; ++i) {
                L.u[i] += L.du[i];
                L.v[i] += L.dv[i];
            }
        }
    }

    const Level& F = levels_[finest];
    const Level& full = levels_[0];
    const int w = full.w, h = full.h;
    const float* u = F.u.data();
    const float* v = F.v.data();
    if (finest > 0) {
        const std::size_t n = static_cast<std::size_t>(w) * h;
        tmp_.resize(n);
        tmp2_.resize(n);
        upsample_flow(F.u.data(), F.w, F.h, tmp_.data(), w, h, 1 << finest, cols_, weights_, row_);
        upsample_flow(F.v.data(), F.w, F.h, tmp2_.data(), w, h, 1 << finest, cols_, weights_, row_);
        u = tmp_.data();
        v = tmp2_.data();
    }
    const std::size_t n = static_cast<std::size_t>(w) * h;
    for (std::size_t i = 0; i < n; ++i) {
        flow[2 * i] = u[i];
        flow[2 * i + 1] = v[i];
    }
}

}  // namespace microexpr
