#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <mutex>

#include "microexpr/core.hpp"
#include "ndarray.hpp"

namespace py = pybind11;
using namespace microexpr;
using py_bind::expect;

namespace {

// One DenseFlow's buffers serve one computation at a time.
struct LockedFlow {
    explicit LockedFlow(const FlowParams& p) : flow(p) {}
    DenseFlow flow;
    std::mutex mutex;
};

template <typename T>
void compute_typed(LockedFlow& self, const py::object& prev_obj, const py::object& next_obj,
                   py::array_t<float, py::array::c_style>& out) {
    const char* expected = "uint8 or float32 array of shape (H, W)";
    auto prev = expect<T>(prev_obj, "prev", expected, {-1, -1});
    auto next = expect<T>(next_obj, "next", expected, {prev.shape(0), prev.shape(1)});
    const int h = static_cast<int>(prev.shape(0)), w = static_cast<int>(prev.shape(1));
    if (out.shape(0) != h || out.shape(1) != w)
        throw std::invalid_argument("out: expected float32 array of shape (" + std::to_string(h) + ", " +
                              std::to_string(w) + ", 2), got " + py_bind::describe(out));
    if constexpr (std::is_same_v<T, float>) {
        const float* p = prev.data();
        const float* q = next.data();
        const std::size_t n = static_cast<std::size_t>(w) * h;
        for (std::size_t i = 0; i < n; ++i)
            if (!std::isfinite(p[i]) || !std::isfinite(q[i]))
                throw std::invalid_argument(std::string(std::isfinite(p[i]) ? "next" : "prev") +
                                      ": image holds a non-finite value at pixel " + std::to_string(i));
    }
    const T* p = prev.data();
    const T* q = next.data();
    float* f = out.mutable_data();
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(self.mutex);
    self.flow.compute(p, q, w, h, w, f);
}

py::array compute_py(LockedFlow& self, const py::object& prev, const py::object& next,
                     const py::object& out_obj) {
    py::array_t<float, py::array::c_style> out;
    if (out_obj.is_none()) {
        if (!py::isinstance<py::array>(prev))
            throw py::type_error("prev: expected uint8 or float32 array of shape (H, W), got " +
                                 py_bind::describe(prev));
        if (py::reinterpret_borrow<py::array>(prev).ndim() != 2)
            throw std::invalid_argument("prev: expected uint8 or float32 array of shape (H, W), got " +
                                  py_bind::describe(prev));
        auto a = py::reinterpret_borrow<py::array>(prev);
        out = py::array_t<float, py::array::c_style>({a.shape(0), a.shape(1), py::ssize_t(2)});
    } else {
        out = expect<float>(out_obj, "out", "float32 array of shape (H, W, 2)", {-1, -1, 2});
    }
    if (py_bind::has_dtype<float>(prev)) compute_typed<float>(self, prev, next, out);
    else compute_typed<std::uint8_t>(self, prev, next, out);
    return out;
}

FlowParams make_params(const std::string& preset, const py::object& levels, const py::object& finest_level,
                       const py::object& warps, const py::object& sweeps, const py::object& window,
                       const py::object& smoothness, const py::object& relaxation,
                       const py::object& highpass, const py::object& correction_sweeps) {
    FlowParams p = flow_preset(preset);
    auto as_int = [](const py::object& o, const char* name) {
        if (!py::isinstance<py::int_>(o) || py::isinstance<py::bool_>(o))
            throw py::type_error(std::string(name) + ": expected an int, got " + py_bind::describe(o));
        return o.cast<int>();
    };
    auto as_float = [](const py::object& o, const char* name) {
        if (!(py::isinstance<py::float_>(o) || py::isinstance<py::int_>(o)) || py::isinstance<py::bool_>(o))
            throw py::type_error(std::string(name) + ": expected a number, got " + py_bind::describe(o));
        return o.cast<float>();
    };
    if (!levels.is_none()) p.levels = as_int(levels, "levels");
    if (!finest_level.is_none()) p.finest_level = as_int(finest_level, "finest_level");
    if (!warps.is_none()) p.warps = as_int(warps, "warps");
    if (!sweeps.is_none()) p.sweeps = as_int(sweeps, "sweeps");
    if (!window.is_none()) p.window = as_int(window, "window");
    if (!smoothness.is_none()) p.smoothness = as_float(smoothness, "smoothness");
    if (!relaxation.is_none()) p.relaxation = as_float(relaxation, "relaxation");
    if (!highpass.is_none()) p.highpass = as_int(highpass, "highpass");
    if (!correction_sweeps.is_none()) p.correction_sweeps = as_int(correction_sweeps, "correction_sweeps");
    return p;
}

}  // namespace

void bind_flow(py::module_& m) {
    py::class_<LockedFlow>(m, "DenseFlow")
        .def(py::init([](const std::string& preset, const py::object& levels,
                         const py::object& finest_level, const py::object& warps,
                         const py::object& sweeps, const py::object& window,
                         const py::object& smoothness, const py::object& relaxation,
                         const py::object& highpass, const py::object& correction_sweeps) {
                 return new LockedFlow(make_params(preset, levels, finest_level, warps, sweeps, window,
                                                   smoothness, relaxation, highpass, correction_sweeps));
             }),
             py::kw_only(), py::arg("preset") = "balanced", py::arg("levels") = py::none(),
             py::arg("finest_level") = py::none(), py::arg("warps") = py::none(),
             py::arg("sweeps") = py::none(), py::arg("window") = py::none(),
             py::arg("smoothness") = py::none(), py::arg("relaxation") = py::none(),
             py::arg("highpass") = py::none(), py::arg("correction_sweeps") = py::none())
        .def("compute", &compute_py, py::arg("prev"), py::arg("next"), py::kw_only(),
             py::arg("out") = py::none())
        .def_property_readonly("params", [](const LockedFlow& self) {
            const FlowParams& p = self.flow.params();
            py::dict d;
            d["levels"] = p.levels;
            d["finest_level"] = p.finest_level;
            d["warps"] = p.warps;
            d["sweeps"] = p.sweeps;
            d["window"] = p.window;
            d["smoothness"] = p.smoothness;
            d["relaxation"] = p.relaxation;
            d["highpass"] = p.highpass;
            d["correction_sweeps"] = p.correction_sweeps;
            return d;
        });
    m.attr("MIN_FLOW_SIDE") = kMinFlowSide;
}
