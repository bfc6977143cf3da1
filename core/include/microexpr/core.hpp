// microexpr core: C++17 kernels for micro-expression spotting.
// No Python, no OpenCV. Every entry point checks its preconditions and throws
// std::invalid_argument with a precise message; callers map that to their
// own error model (the C ABI to status codes, the bindings to ValueError).
#pragma once

#include <array>
#include <complex>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace microexpr {

// ---------------------------------------------------------------- alignment
// Row-major 2x3 affine matrix mapping source (x, y) to destination (x', y').
using Affine = std::array<double, 6>;

// Least-squares similarity (rotation, uniform scale, translation) taking
// src[i] to dst[i] (Umeyama 1991, without reflection). Points are n (x, y)
// pairs, n >= 2, not all coincident.
Affine estimate_similarity(const double* src_xy, const double* dst_xy, std::size_t n);

enum class Border { Replicate = 0, Constant = 1 };

// dst(x, y) = src(M^-1 (x, y)), bilinear. uint8 output is rounded to nearest.
// Strides are in elements. `fill` is used with Border::Constant.
void warp_affine(const std::uint8_t* src, int src_w, int src_h, std::ptrdiff_t src_stride,
                 const Affine& m, std::uint8_t* dst, int dst_w, int dst_h,
                 std::ptrdiff_t dst_stride, Border border, double fill = 0.0);
void warp_affine(const float* src, int src_w, int src_h, std::ptrdiff_t src_stride,
                 const Affine& m, float* dst, int dst_w, int dst_h, std::ptrdiff_t dst_stride,
                 Border border, double fill = 0.0);

// ---------------------------------------------------------------- dense flow
struct FlowParams {
    int levels = 4;          // pyramid levels above the finest one computed
    int finest_level = 0;    // 0 = full resolution; >0 upsamples the result
    int warps = 2;           // linearisation (warping) iterations per level
    int sweeps = 6;          // red-black Gauss-Seidel sweeps per warp
    int window = 2;          // radius of the local structure-tensor box
    float smoothness = 0.05f; // weight of the first-order smoothness term
    float relaxation = 1.8f;  // successive over-relaxation factor, in (0, 2)
    int highpass = 0;         // >0: subtract the local mean over this box radius (px)
                              // first, removing illumination gradients
    int correction_sweeps = 0; // >0: the finest level's sweeps are split in half around
                               // a correction solved on a half-resolution grid with
                               // this many sweeps (a two-grid cycle)
};

// Named speed/accuracy trade-offs: "fast", "balanced", "accurate".
FlowParams flow_preset(const std::string& name);

// Coarse-to-fine combined local-global (CLG) optical flow with inverse
// compositional linearisation. Buffers are kept between calls, so one
// instance per thread; compute() is deterministic.
class DenseFlow {
public:
    explicit DenseFlow(const FlowParams& params = FlowParams());
    const FlowParams& params() const { return params_; }
    // prev/next: h x w images (row stride in elements); flow: h*w*2 floats
    // (dx, dy interleaved), the displacement of each prev pixel into next.
    void compute(const std::uint8_t* prev, const std::uint8_t* next, int w, int h,
                 std::ptrdiff_t stride, float* flow);
    void compute(const float* prev, const float* next, int w, int h, std::ptrdiff_t stride,
                 float* flow);

private:
    // One pyramid level's images and work buffers, reused across calls.
    struct Level {
        int w = 0, h = 0;
        std::vector<float> prev, next;          // raw (box-downsampled) images
        std::vector<float> prev_s, next_s;      // 3x3 binomial smoothed
        std::vector<float> u, v;                // flow
    };
    // The sweep's per-pixel arrays of the level being solved, one plane per
    // colour of the red-black ordering (layout in flow.cpp), reused across levels.
    struct Checkerboard {
        int stride = 0;
        std::vector<float> du[2], dv[2];  // flow increment
        // Per pixel: the 2x2 system inverse (a, b, c) and the constant
        // right-hand side (cx, cy), interleaved in blocks of eight pixels.
        std::vector<float> coeffs[2];
    };
    template <typename T>
    void load(const T* prev, const T* next, int w, int h, std::ptrdiff_t stride);
    void run(float* flow);
    // Two-grid cycle at the finest level (w x h): the half-resolution grid's
    // systems once per level, then its correction of each warp's increment.
    void build_correction_grid(int w, int h);
    void correct_on_coarse_grid(int w, int h);
    FlowParams params_;
    std::vector<Level> levels_;
    Checkerboard board_, coarse_board_;
    // For the two-grid cycle: the finest level's box-mean structure tensor
    // (xx, xy, yy planes); the half-resolution grid's tensor sums (xx, xy,
    // yy), residual sums then correction (x, y) and three packing rows.
    std::vector<float> tensor_, coarse_;
    std::vector<float> tmp_, tmp2_, box_ring_, box_rows_, box_acc_, weights_, row_;
    std::vector<int> cols_;
};

// Smallest side accepted by dense flow.
constexpr int kMinFlowSide = 8;

// ---------------------------------------------------------------- regions
// Columns of the per-region table, in order.
enum RegionColumn : int {
    kCount = 0,          // pixels in the region
    kMeanMagnitude,      // mean |v|
    kMeanDx,             // mean vector
    kMeanDy,
    kMainDirectionMagnitude,  // MDMD: mean |v| of the top fraction in the dominant bin
    kMainDirection,      // dominant bin's centre angle, radians in (-pi, pi]
    kMeanStrain,         // mean optical strain magnitude
    kRegionColumns
};

// flow: h*w*2 floats; labels: h*w int32, -1 (or any negative) = no region,
// otherwise < n_regions. With reference >= 0, that region's mean vector is
// subtracted from every vector first. out: n_regions * kRegionColumns.
// Empty regions read count 0 and NaN elsewhere.
void region_stats(const float* flow, const std::int32_t* labels, int w, int h, int n_regions,
                  int reference, double top_fraction, int direction_bins, double* out);

// ---------------------------------------------------------------- spectra
struct Band {
    double lo, hi;  // Hz, lo <= hi
};

// Streaming band energies of many channels sampled at irregular times.
// Samples are linearly resampled onto a grid at `rate`; each band is watched
// by resonators (an exponentially windowed DFT at probe frequencies spaced
// 1/window apart), so the state is O(probes) per channel and one push costs
// O(channels * probes) per grid sample. Energies approximate the mean square
// of each band's content: a tone of amplitude A reads about A^2 / 2.
class Spectra {
public:
    Spectra(int n_channels, double rate, double window, std::vector<Band> bands,
            bool detrend = true);
    // t must increase (std::invalid_argument otherwise); a gap longer than
    // the window restarts the analysis.
    // values: n_channels doubles; energies (optional): n_channels * n_bands.
    void push(double t, const double* values, double* energies);
    void energies(double* out) const;
    void reset();
    int n_channels() const { return n_channels_; }
    int n_bands() const { return static_cast<int>(bands_.size()); }
    double rate() const { return rate_; }
    double window() const { return window_; }
    const std::vector<Band>& bands() const { return bands_; }
    const std::vector<double>& probe_frequencies() const { return probe_freq_; }
    std::int64_t samples() const { return n_grid_; }

private:
    void step(const double* x);
    int n_channels_;
    double rate_, window_;
    std::vector<Band> bands_;
    bool detrend_;
    std::vector<double> probe_freq_;
    std::vector<int> probe_band_;
    std::vector<std::complex<double>> rotor_;   // r * e^{i w / rate} per probe
    std::vector<std::complex<double>> state_;   // channels x probes
    std::vector<double> mean_;                   // detrending running mean per channel
    std::vector<double> last_values_, scratch_;
    double decay_ = 0, mean_decay_ = 0, last_t_ = 0, next_grid_t_ = 0;
    std::int64_t n_grid_ = 0;
    bool started_ = false;
};

// Offline short-time power spectrum. x: n samples at times t (strictly
// increasing), linearly resampled onto a grid at `rate`; Hann segments of
// round(window * rate) samples every round(hop * rate). Power is one-sided
// and scaled so a tone of amplitude A peaks at A^2 / 2.
struct Spectrogram {
    std::vector<double> times;  // segment centres, seconds
    std::vector<double> freqs;  // Hz
    std::vector<double> power;  // times.size() x freqs.size()
};
Spectrogram spectrogram(const double* t, const double* x, std::size_t n, double rate,
                        double window, double hop, bool detrend = true);

const char* version();

}  // namespace microexpr
