// The C ABI: every call catches everything and turns it into a status code.
#include <microexpr.h>

#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "microexpr/core.hpp"

struct mx_flow {
    microexpr::DenseFlow impl;
};
struct mx_spectra {
    microexpr::Spectra impl;
};

namespace {

thread_local std::string last_error;

template <typename F>
mx_status guarded(F&& f) {
    try {
        last_error.clear();
        f();
        return MX_OK;
    } catch (const std::invalid_argument& e) {
        last_error = e.what();
        return MX_ERR_INVALID_ARGUMENT;
    } catch (const std::bad_alloc&) {
        last_error = "out of memory";
        return MX_ERR_OUT_OF_MEMORY;
    } catch (const std::exception& e) {
        last_error = e.what();
        return MX_ERR_INTERNAL;
    } catch (...) {
        last_error = "unknown error";
        return MX_ERR_INTERNAL;
    }
}

void require(bool ok, const char* what) {
    if (!ok) throw std::invalid_argument(what);
}

}  // namespace

extern "C" {

const char* mx_version(void) { return microexpr::version(); }
const char* mx_last_error(void) { return last_error.c_str(); }

mx_status mx_estimate_similarity(const double* src, const double* dst, size_t n, double out[6]) {
    return guarded([&] {
        require(out != nullptr, "null output");
        const auto m = microexpr::estimate_similarity(src, dst, n);
        for (int i = 0; i < 6; ++i) out[i] = m[i];
    });
}

mx_status mx_warp_affine_u8(const uint8_t* src, int sw, int sh, ptrdiff_t ss, const double m[6],
                            uint8_t* dst, int dw, int dh, ptrdiff_t ds, int border, double fill) {
    return guarded([&] {
        require(m != nullptr, "null matrix");
        require(border == MX_BORDER_REPLICATE || border == MX_BORDER_CONSTANT, "unknown border mode");
        microexpr::Affine a{m[0], m[1], m[2], m[3], m[4], m[5]};
        microexpr::warp_affine(src, sw, sh, ss, a, dst, dw, dh, ds,
                               static_cast<microexpr::Border>(border), fill);
    });
}

mx_status mx_flow_create(const char* preset, mx_flow** out) {
    return guarded([&] {
        require(out != nullptr, "null output handle");
        *out = nullptr;
        require(preset != nullptr, "null preset name");
        *out = new mx_flow{microexpr::DenseFlow(microexpr::flow_preset(preset))};
    });
}

mx_status mx_flow_compute_u8(mx_flow* flow, const uint8_t* prev, const uint8_t* next, int w, int h,
                             ptrdiff_t stride, float* flow_out) {
    return guarded([&] {
        require(flow != nullptr, "null flow handle");
        flow->impl.compute(prev, next, w, h, stride, flow_out);
    });
}

void mx_flow_destroy(mx_flow* flow) { delete flow; }

mx_status mx_region_stats(const float* flow, const int32_t* labels, int w, int h, int n_regions,
                          int reference, double top_fraction, int direction_bins, double* out) {
    return guarded([&] {
        microexpr::region_stats(flow, labels, w, h, n_regions, reference, top_fraction,
                                direction_bins, out);
    });
}

mx_status mx_spectra_create(int n_channels, double rate, double window, const double* bands,
                            int n_bands, mx_spectra** out) {
    return guarded([&] {
        require(out != nullptr, "null output handle");
        *out = nullptr;
        require(bands != nullptr && n_bands > 0, "need at least one band");
        std::vector<microexpr::Band> b;
        for (int i = 0; i < n_bands; ++i) b.push_back({bands[2 * i], bands[2 * i + 1]});
        *out = new mx_spectra{microexpr::Spectra(n_channels, rate, window, std::move(b))};
    });
}

mx_status mx_spectra_push(mx_spectra* s, double t, const double* values, double* energies) {
    return guarded([&] {
        require(s != nullptr, "null spectra handle");
        s->impl.push(t, values, energies);
    });
}

void mx_spectra_destroy(mx_spectra* s) { delete s; }

}  // extern "C"
