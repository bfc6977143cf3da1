// Landmark-displacement spectra: streaming band energies (resonator bank)
// and an offline short-time power spectrum.
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "microexpr/core.hpp"

namespace microexpr {

namespace {
constexpr double kPi = 3.14159265358979323846;
constexpr double kMaxRate = 1e5;
constexpr double kMaxWindowSamples = 1e6;
constexpr double kMaxProbesPerBand = 4096;

void check_rate_window(double rate, double window) {
    if (!(rate > 0.0) || !std::isfinite(rate))
        throw std::invalid_argument("rate must be a positive number of Hz");
    if (!(window > 0.0) || !std::isfinite(window))
        throw std::invalid_argument("window must be a positive number of seconds");
    if (window * rate < 2.0)
        throw std::invalid_argument("window * rate must cover at least 2 samples");
    if (rate > kMaxRate)
        throw std::invalid_argument("rate must be at most 1e5 Hz");
    if (window * rate > kMaxWindowSamples)
        throw std::invalid_argument("window * rate must be at most 1e6 samples");
}
}  // namespace

Spectra::Spectra(int n_channels, double rate, double window, std::vector<Band> bands, bool detrend)
    : n_channels_(n_channels), rate_(rate), window_(window), bands_(std::move(bands)),
      detrend_(detrend) {
    if (n_channels < 1) throw std::invalid_argument("n_channels must be >= 1");
    check_rate_window(rate, window);
    if (bands_.empty()) throw std::invalid_argument("at least one band is needed");
    const double nyquist = rate / 2.0;
    const double df = 1.0 / window;
    for (std::size_t b = 0; b < bands_.size(); ++b) {
        const Band& band = bands_[b];
        if (!(band.lo >= 0.0) || !(band.hi >= band.lo) || !std::isfinite(band.hi))
            throw std::invalid_argument("band " + std::to_string(b) + " must satisfy 0 <= lo <= hi");
        if (band.hi > nyquist + 1e-9)
            throw std::invalid_argument("band " + std::to_string(b) + " reaches " +
                                        std::to_string(band.hi) + " Hz, above the Nyquist frequency " +
                                        std::to_string(nyquist) + " Hz of rate " + std::to_string(rate));
        // Probes 1/window apart across the band; a narrow band gets its centre.
        const double span = std::floor((band.hi - band.lo) / df + 1e-9);
        if (span > kMaxProbesPerBand)
            throw std::invalid_argument("band " + std::to_string(b) + " needs more than 4096 probes at this window");
        const int k = static_cast<int>(span);
        if (k == 0) {
            probe_freq_.push_back(0.5 * (band.lo + band.hi));
            probe_band_.push_back(static_cast<int>(b));
        } else {
            const double start = band.lo + 0.5 * ((band.hi - band.lo) - k * df);
            for (int j = 0; j <= k; ++j) {
                // A band from 0 Hz keeps an exact DC probe (rounding would make it ~1e-17 Hz).
                const double f = start + j * df;
                probe_freq_.push_back(std::fabs(f) < 1e-9 * df ? 0.0 : f);
                probe_band_.push_back(static_cast<int>(b));
            }
        }
    }
    // Exponential window with time constant window / 2: the same noise
    // bandwidth as a rectangular window of `window` seconds.
    decay_ = std::exp(-2.0 / (rate * window));
    mean_decay_ = std::exp(-1.0 / (rate * window));
    for (double f : probe_freq_)
        rotor_.push_back(decay_ * std::polar(1.0, 2.0 * kPi * f / rate));
    state_.assign(static_cast<std::size_t>(n_channels) * probe_freq_.size(), {0.0, 0.0});
    mean_.assign(n_channels, 0.0);
    last_values_.assign(n_channels, 0.0);
    scratch_.assign(n_channels, 0.0);
}

void Spectra::reset() {
    std::fill(state_.begin(), state_.end(), std::complex<double>(0.0, 0.0));
    started_ = false;
    n_grid_ = 0;
}

void Spectra::step(const double* x) {
    const std::size_t P = probe_freq_.size();
    for (int c = 0; c < n_channels_; ++c) {
        double v = x[c];
        if (detrend_) {
            // One-pole high-pass: removes the position offset and slow drift.
            mean_[c] = n_grid_ == 0 ? v : mean_decay_ * mean_[c] + (1.0 - mean_decay_) * v;
            v -= mean_[c];
        }
        std::complex<double>* s = &state_[static_cast<std::size_t>(c) * P];
        for (std::size_t p = 0; p < P; ++p) s[p] = rotor_[p] * s[p] + v;
    }
    ++n_grid_;
}

void Spectra::push(double t, const double* values, double* energies_out) {
    if (!values) throw std::invalid_argument("null values pointer");
    if (!std::isfinite(t)) throw std::invalid_argument("timestamp is not finite");
    for (int c = 0; c < n_channels_; ++c)
        if (!std::isfinite(values[c]))
            throw std::invalid_argument("value of channel " + std::to_string(c) + " is not finite");
    const double dt = 1.0 / rate_;
    if (started_ && !(t > last_t_))
        throw std::invalid_argument("timestamps must increase: got " + std::to_string(t) +
                                    " s after " + std::to_string(last_t_) + " s");
    if (started_ && t - last_t_ > window_) reset();  // a gap longer than the window: start over
    if (!started_) {
        started_ = true;
        step(values);
        next_grid_t_ = t + dt;
    } else {
        // Linear interpolation onto every grid time up to t.
        const double span = t - last_t_;
        if (!(next_grid_t_ + dt > next_grid_t_))
            throw std::invalid_argument("timestamps are too large for rate " + std::to_string(rate_) +
                                        ": the sampling step vanishes");
        while (next_grid_t_ <= t + 1e-12) {
            const double a = (next_grid_t_ - last_t_) / span;
            for (int c = 0; c < n_channels_; ++c)
                scratch_[c] = last_values_[c] + a * (values[c] - last_values_[c]);
            step(scratch_.data());
            next_grid_t_ += dt;
        }
    }
    last_t_ = t;
    std::copy(values, values + n_channels_, last_values_.begin());
    if (energies_out) energies(energies_out);
}

void Spectra::energies(double* out) const {
    const std::size_t P = probe_freq_.size();
    const int nb = n_bands();
    const double g = 1.0 - decay_;
    for (int c = 0; c < n_channels_; ++c) {
        double* row = out + static_cast<std::size_t>(c) * nb;
        std::fill(row, row + nb, 0.0);
        const std::complex<double>* s = &state_[static_cast<std::size_t>(c) * P];
        for (std::size_t p = 0; p < P; ++p) {
            // Amplitude of a tone at this probe: 2 (1 - r) |s| (DC: (1 - r) |s|).
            const double a = (probe_freq_[p] > 0.0 ? 2.0 : 1.0) * g * std::abs(s[p]);
            row[probe_band_[p]] += probe_freq_[p] > 0.0 ? 0.5 * a * a : a * a;
        }
    }
}

Spectrogram spectrogram(const double* t, const double* x, std::size_t n, double rate,
                        double window, double hop, bool detrend) {
    if (!t || !x) throw std::invalid_argument("null pointer");
    check_rate_window(rate, window);
    if (!(hop > 0.0) || !std::isfinite(hop)) throw std::invalid_argument("hop must be a positive number of seconds");
    for (std::size_t i = 0; i < n; ++i) {
        if (!std::isfinite(t[i]) || !std::isfinite(x[i]))
            throw std::invalid_argument("sample " + std::to_string(i) + " is not finite");
        if (i > 0 && !(t[i] > t[i - 1]))
            throw std::invalid_argument("times must increase strictly (sample " + std::to_string(i) + ")");
    }
    const std::size_t N = static_cast<std::size_t>(std::llround(window * rate));
    const std::size_t H = std::max<std::size_t>(1, static_cast<std::size_t>(std::llround(hop * rate)));
    Spectrogram out;
    const std::size_t nf = N / 2 + 1;
    for (std::size_t k = 0; k < nf; ++k) out.freqs.push_back(k * rate / N);
    if (n == 0) return out;
    // Uniform grid t0 + i / rate over [t0, t_end].
    const std::size_t m = static_cast<std::size_t>(std::floor((t[n - 1] - t[0]) * rate + 1e-9)) + 1;
    if (m < N) return out;
    std::vector<double> grid(m);
    std::size_t j = 0;
    for (std::size_t i = 0; i < m; ++i) {
        const double ti = t[0] + i / rate;
        while (j + 1 < n && t[j + 1] <= ti) ++j;
        grid[i] = (j + 1 < n) ? x[j] + (ti - t[j]) / (t[j + 1] - t[j]) * (x[j + 1] - x[j]) : x[n - 1];
    }
    std::vector<double> win(N), seg(N), cosv(N), sinv(N);
    double wsum = 0.0;
    for (std::size_t i = 0; i < N; ++i) {
        win[i] = 0.5 - 0.5 * std::cos(2.0 * kPi * i / N);  // periodic Hann
        wsum += win[i];
        cosv[i] = std::cos(2.0 * kPi * i / N);
        sinv[i] = std::sin(2.0 * kPi * i / N);
    }
    for (std::size_t start = 0; start + N <= m; start += H) {
        double mean = 0.0;
        if (detrend) {
            for (std::size_t i = 0; i < N; ++i) mean += grid[start + i];
            mean /= N;
        }
        for (std::size_t i = 0; i < N; ++i) seg[i] = (grid[start + i] - mean) * win[i];
        out.times.push_back(t[0] + (start + 0.5 * N) / rate);
        for (std::size_t k = 0; k < nf; ++k) {
            double re = 0.0, im = 0.0;
            std::size_t idx = 0;
            for (std::size_t i = 0; i < N; ++i) {
                re += seg[i] * cosv[idx];
                im -= seg[i] * sinv[idx];
                idx += k;
                if (idx >= N) idx -= N;
            }
            const double p = (re * re + im * im) / (wsum * wsum);
            const bool edge = k == 0 || (N % 2 == 0 && k == N / 2);
            out.power.push_back(edge ? p : 2.0 * p);
        }
    }
    return out;
}

}  // namespace microexpr
