#include <pybind11/pybind11.h>

#include "microexpr/core.hpp"
#include "ndarray.hpp"

namespace py = pybind11;
using namespace microexpr;
using py_bind::expect;

namespace {

py::array region_stats_py(const py::object& flow_obj, const py::object& labels_obj, int n_regions,
                          const py::object& reference, double top_fraction, int direction_bins) {
    auto flow = expect<float>(flow_obj, "flow", "float32 array of shape (H, W, 2)", {-1, -1, 2});
    const py::ssize_t h = flow.shape(0), w = flow.shape(1);
    if (h < 1 || w < 1) throw std::invalid_argument("flow is empty");
    const std::string shape = "(" + std::to_string(h) + ", " + std::to_string(w) + ")";
    auto labels = expect<std::int32_t>(labels_obj, "labels", ("int32 array of shape " + shape).c_str(), {h, w});
    if (!reference.is_none() && (!py::isinstance<py::int_>(reference) || py::isinstance<py::bool_>(reference)))
        throw py::type_error("reference: expected a region index (int) or None, got " + py_bind::describe(reference));
    const int ref = reference.is_none() ? -1 : reference.cast<int>();
    if (!reference.is_none() && ref < 0)
        throw std::invalid_argument("reference must be a region index >= 0 or None, got " + std::to_string(ref));
    py::array_t<double> out({static_cast<py::ssize_t>(std::max(n_regions, 0)), py::ssize_t(kRegionColumns)});
    const float* f = flow.data();
    const std::int32_t* l = labels.data();
    double* o = out.mutable_data();
    py::gil_scoped_release release;
    region_stats(f, l, static_cast<int>(w), static_cast<int>(h), n_regions, ref, top_fraction,
                 direction_bins, o);
    return out;
}

}  // namespace

void bind_regions(py::module_& m) {
    m.def("region_stats", &region_stats_py, py::arg("flow"), py::arg("labels"), py::kw_only(),
          py::arg("n_regions"), py::arg("reference") = py::none(), py::arg("top_fraction") = 0.2,
          py::arg("direction_bins") = 8);
    m.attr("REGION_COLUMNS") = py::make_tuple("count", "mean_magnitude", "mean_dx", "mean_dy",
                                              "mdmd", "main_direction", "mean_strain");
}
