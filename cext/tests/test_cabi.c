/* Exercises the C ABI end to end, as a native host would. Exit 0 on success. */
#include <math.h>
#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microexpr.h>

static int passed = 0, failed = 0;
#define CHECK(cond)                                                              \
    do {                                                                         \
        if (cond) {                                                              \
            ++passed;                                                            \
        } else {                                                                 \
            ++failed;                                                            \
            fprintf(stderr, "%s:%d: check failed: %s (last error: %s)\n", __FILE__, \
                    __LINE__, #cond, mx_last_error());                           \
        }                                                                        \
    } while (0)

/* A smooth textured pattern sampled at (x + sx, y + sy). */
static double pattern(double x, double y) {
    return 128.0 + 50.0 * sin(0.31 * x + 0.7 * sin(0.05 * y)) * cos(0.23 * y) +
           30.0 * sin(0.11 * x * 0.9 + 0.17 * y);
}

static void test_similarity(void) {
    /* dst = s R src + t with s = 1.5, 30 degrees, t = (10, -4). */
    const double c = 1.5 * cos(M_PI / 6), s = 1.5 * sin(M_PI / 6);
    double src[8] = {0, 0, 10, 0, 0, 10, 7, 3}, dst[8], m[6];
    for (int i = 0; i < 4; ++i) {
        dst[2 * i] = c * src[2 * i] - s * src[2 * i + 1] + 10;
        dst[2 * i + 1] = s * src[2 * i] + c * src[2 * i + 1] - 4;
    }
    CHECK(mx_estimate_similarity(src, dst, 4, m) == MX_OK);
    CHECK(fabs(m[0] - c) < 1e-9 && fabs(m[1] + s) < 1e-9 && fabs(m[2] - 10) < 1e-9);
    CHECK(fabs(m[3] - s) < 1e-9 && fabs(m[4] - c) < 1e-9 && fabs(m[5] + 4) < 1e-9);
    CHECK(mx_estimate_similarity(src, dst, 1, m) == MX_ERR_INVALID_ARGUMENT);
    CHECK(strlen(mx_last_error()) > 0);
}

static void test_warp(void) {
    enum { W = 40, H = 30 };
    uint8_t src[W * H], dst[W * H];
    for (int i = 0; i < W * H; ++i) src[i] = (uint8_t)(i * 7);
    const double identity[6] = {1, 0, 0, 0, 1, 0};
    CHECK(mx_warp_affine_u8(src, W, H, W, identity, dst, W, H, W, MX_BORDER_REPLICATE, 0) == MX_OK);
    CHECK(memcmp(src, dst, sizeof src) == 0);
    const double shift[6] = {1, 0, -1, 0, 1, 0}; /* dst(x) = src(x + 1) */
    CHECK(mx_warp_affine_u8(src, W, H, W, shift, dst, W, H, W, MX_BORDER_CONSTANT, 9) == MX_OK);
    CHECK(dst[0] == src[1] && dst[W - 1] == 9);
    const double singular[6] = {0, 0, 0, 0, 0, 0};
    CHECK(mx_warp_affine_u8(src, W, H, W, singular, dst, W, H, W, 0, 0) == MX_ERR_INVALID_ARGUMENT);
    CHECK(mx_warp_affine_u8(src, W, H, W, identity, dst, W, H, W, 7, 0) == MX_ERR_INVALID_ARGUMENT);
}

static void test_flow(void) {
    enum { W = 96, H = 96 };
    uint8_t *a = malloc(W * H), *b = malloc(W * H);
    float* f = malloc(sizeof(float) * W * H * 2);
    for (int y = 0; y < H; ++y)
        for (int x = 0; x < W; ++x) {
            a[y * W + x] = (uint8_t)lround(pattern(x, y));
            b[y * W + x] = (uint8_t)lround(pattern(x - 1.25, y + 0.5)); /* moved by (1.25, -0.5) */
        }
    const char* presets[] = {"fast", "balanced", "accurate"};
    for (int p = 0; p < 3; ++p) {
        mx_flow* flow = NULL;
        CHECK(mx_flow_create(presets[p], &flow) == MX_OK && flow != NULL);
        CHECK(mx_flow_compute_u8(flow, a, b, W, H, W, f) == MX_OK);
        double err = 0;
        int n = 0;
        for (int y = 16; y < H - 16; ++y)
            for (int x = 16; x < W - 16; ++x, ++n) {
                const float* v = f + 2 * (y * W + x);
                err += hypot(v[0] - 1.25, v[1] + 0.5);
            }
        printf("flow preset %s: mean end-point error %.3f px\n", presets[p], err / n);
        /* fast solves at quarter resolution: coarser on this fine pattern */
        CHECK(err / n < (p == 0 ? 0.4 : 0.1));
        mx_flow_destroy(flow);
    }
    mx_flow* flow = NULL;
    CHECK(mx_flow_create("nope", &flow) == MX_ERR_INVALID_ARGUMENT && flow == NULL);
    CHECK(strstr(mx_last_error(), "nope") != NULL);
    CHECK(mx_flow_create("fast", &flow) == MX_OK);
    CHECK(mx_flow_compute_u8(flow, a, b, 4, 4, 4, f) == MX_ERR_INVALID_ARGUMENT);
    CHECK(mx_flow_compute_u8(flow, NULL, b, W, H, W, f) == MX_ERR_INVALID_ARGUMENT);
    CHECK(mx_flow_compute_u8(NULL, a, b, W, H, W, f) == MX_ERR_INVALID_ARGUMENT);
    mx_flow_destroy(flow);
    mx_flow_destroy(NULL);
    free(a);
    free(b);
    free(f);
}

static void test_regions(void) {
    enum { W = 8, H = 6 };
    float flow[W * H * 2];
    int32_t labels[W * H];
    for (int i = 0; i < W * H; ++i) {
        labels[i] = i < W * H / 2 ? 0 : 1;
        flow[2 * i] = labels[i] ? 3.0f : 1.0f; /* region 1 moves (3, 4), region 0 (1, 0) */
        flow[2 * i + 1] = labels[i] ? 4.0f : 0.0f;
    }
    double out[2 * MX_REGION_COLUMNS];
    CHECK(mx_region_stats(flow, labels, W, H, 2, -1, 0.2, 8, out) == MX_OK);
    CHECK(out[MX_REGION_COLUMNS + MX_REGION_COUNT] == W * H / 2);
    CHECK(fabs(out[MX_REGION_COLUMNS + MX_REGION_MEAN_MAGNITUDE] - 5.0) < 1e-6);
    CHECK(fabs(out[MX_REGION_COLUMNS + MX_REGION_MDMD] - 5.0) < 1e-6);
    CHECK(mx_region_stats(flow, labels, W, H, 2, 0, 0.2, 8, out) == MX_OK); /* minus region 0 */
    CHECK(fabs(out[MX_REGION_COLUMNS + MX_REGION_MEAN_DX] - 2.0) < 1e-6);
    CHECK(fabs(out[MX_REGION_MEAN_MAGNITUDE]) < 1e-9);
    labels[3] = 5;
    CHECK(mx_region_stats(flow, labels, W, H, 2, -1, 0.2, 8, out) == MX_ERR_INVALID_ARGUMENT);
}

static void test_spectra(void) {
    const double bands[4] = {0.5, 2.0, 3.0, 6.0};
    mx_spectra* s = NULL;
    CHECK(mx_spectra_create(2, 30.0, 1.0, bands, 2, &s) == MX_OK);
    double e[4] = {0};
    for (int i = 0; i < 300; ++i) {
        const double t = i / 29.97;
        const double v[2] = {2.0 * sin(2 * M_PI * 4.0 * t), 2.0 * sin(2 * M_PI * 1.0 * t)};
        CHECK(mx_spectra_push(s, t, v, e) == MX_OK);
    }
    printf("spectra: ch0 %.3f %.3f ch1 %.3f %.3f (tone power 2.0)\n", e[0], e[1], e[2], e[3]);
    CHECK(e[1] > 5 * e[0] && e[2] > 5 * e[3]);
    CHECK(e[1] > 1.0 && e[1] < 3.0);
    const double v[2] = {0, 0};
    CHECK(mx_spectra_push(s, 1.0, v, e) == MX_ERR_INVALID_ARGUMENT); /* time went back */
    const double nan_v[2] = {NAN, 0};
    CHECK(mx_spectra_push(s, 20.0, nan_v, e) == MX_ERR_INVALID_ARGUMENT);
    mx_spectra_destroy(s);
    const double above_nyquist[2] = {1.0, 20.0};
    CHECK(mx_spectra_create(1, 30.0, 1.0, above_nyquist, 1, &s) == MX_ERR_INVALID_ARGUMENT);
}

int main(void) {
    printf("microexpr %s\n", mx_version());
    test_similarity();
    test_warp();
    test_flow();
    test_regions();
    test_spectra();
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
