/* microexpr C ABI: a stable C interface over the C++ core for native hosts
 * (OBS plugins, other languages). Every function returns an mx_status;
 * on failure mx_last_error() describes what went wrong (per thread). No C++
 * exception ever crosses this boundary. Images are row-major with strides in
 * bytes for uint8 and in elements for float buffers, as documented below. */
#ifndef MICROEXPR_H
#define MICROEXPR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#  define MX_API __declspec(dllexport)
#else
#  define MX_API __attribute__((visibility("default")))
#endif

typedef enum mx_status {
    MX_OK = 0,
    MX_ERR_INVALID_ARGUMENT = 1,
    MX_ERR_OUT_OF_MEMORY = 2,
    MX_ERR_INTERNAL = 3
} mx_status;

enum { MX_BORDER_REPLICATE = 0, MX_BORDER_CONSTANT = 1 };

/* Region table columns (mx_region_stats writes MX_REGION_COLUMNS per region). */
enum {
    MX_REGION_COUNT = 0,
    MX_REGION_MEAN_MAGNITUDE = 1,
    MX_REGION_MEAN_DX = 2,
    MX_REGION_MEAN_DY = 3,
    MX_REGION_MDMD = 4,
    MX_REGION_MAIN_DIRECTION = 5,
    MX_REGION_MEAN_STRAIN = 6,
    MX_REGION_COLUMNS = 7
};

MX_API const char* mx_version(void);
/* Message of the last failed call on this thread ("" when none). */
MX_API const char* mx_last_error(void);

/* Least-squares similarity taking src to dst; points are n (x, y) pairs.
 * out_m: 2x3 row-major. */
MX_API mx_status mx_estimate_similarity(const double* src_xy, const double* dst_xy, size_t n,
                                        double out_m[6]);

/* dst(x, y) = src(M^-1 (x, y)), bilinear, strides in bytes. */
MX_API mx_status mx_warp_affine_u8(const uint8_t* src, int src_w, int src_h, ptrdiff_t src_stride,
                                   const double m[6], uint8_t* dst, int dst_w, int dst_h,
                                   ptrdiff_t dst_stride, int border, double fill);

typedef struct mx_flow mx_flow;
/* preset: "fast", "balanced" or "accurate". */
MX_API mx_status mx_flow_create(const char* preset, mx_flow** out);
/* prev/next: h x w uint8, stride in bytes; flow_out: h * w * 2 floats. */
MX_API mx_status mx_flow_compute_u8(mx_flow* flow, const uint8_t* prev, const uint8_t* next, int w,
                                    int h, ptrdiff_t stride, float* flow_out);
MX_API void mx_flow_destroy(mx_flow* flow);

/* flow: h * w * 2 floats; labels: h * w int32 (< 0 = none); reference < 0 for
 * none; out: n_regions * MX_REGION_COLUMNS doubles. */
MX_API mx_status mx_region_stats(const float* flow, const int32_t* labels, int w, int h,
                                 int n_regions, int reference, double top_fraction,
                                 int direction_bins, double* out);

typedef struct mx_spectra mx_spectra;
/* bands: n_bands (lo, hi) pairs in Hz; window in seconds; rate in Hz. */
MX_API mx_status mx_spectra_create(int n_channels, double rate, double window, const double* bands,
                                   int n_bands, mx_spectra** out);
/* values: n_channels; energies_out (may be NULL): n_channels * n_bands. */
MX_API mx_status mx_spectra_push(mx_spectra* spectra, double t, const double* values,
                                 double* energies_out);
MX_API void mx_spectra_destroy(mx_spectra* spectra);

#ifdef __cplusplus
}
#endif

#endif /* MICROEXPR_H */
