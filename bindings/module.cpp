// microexpr._core: the compiled kernels. One bind_<area>.cpp per area.
#include <pybind11/pybind11.h>

#include <stdexcept>

#include "microexpr/core.hpp"

namespace py = pybind11;

void bind_alignment(py::module_& m);
void bind_flow(py::module_& m);
void bind_regions(py::module_& m);
void bind_spectra(py::module_& m);

PYBIND11_MODULE(_core, m) {
    m.doc() = "microexpr compiled core (see microexpr for the documented API)";
    m.attr("__version__") = microexpr::version();
    // Precondition failures inside the core become microexpr.ParameterError
    // (a ValueError), so callers catch one hierarchy.
    static py::object parameter_error =
        py::module_::import("microexpr.errors").attr("ParameterError");
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const std::invalid_argument& e) {
            PyErr_SetString(parameter_error.ptr(), e.what());
        }
    });
#if defined(__AVX2__)
    m.attr("simd") = "avx2";
#elif defined(__SSE4_2__)
    m.attr("simd") = "sse4.2";
#elif defined(__ARM_NEON)
    m.attr("simd") = "neon";
#else
    m.attr("simd") = "baseline";
#endif
    bind_alignment(m);
    bind_flow(m);
    bind_regions(m);
    bind_spectra(m);
}
