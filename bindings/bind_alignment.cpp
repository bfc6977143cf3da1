#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "microexpr/core.hpp"
#include "ndarray.hpp"

namespace py = pybind11;
using namespace microexpr;
using py_bind::expect;

namespace {

py::array estimate_similarity_py(const py::object& src_obj, const py::object& dst_obj) {
    auto src = expect<double>(src_obj, "src", "float64 array of shape (N, 2)", {-1, 2});
    auto dst = expect<double>(dst_obj, "dst", "float64 array of shape (N, 2)", {-1, 2});
    if (src.shape(0) != dst.shape(0))
        throw std::invalid_argument("src and dst must hold the same number of points, got " +
                              std::to_string(src.shape(0)) + " and " + std::to_string(dst.shape(0)));
    Affine m;
    {
        py::gil_scoped_release release;
        m = estimate_similarity(src.data(), dst.data(), static_cast<std::size_t>(src.shape(0)));
    }
    py::array_t<double> out({2, 3});
    std::copy(m.begin(), m.end(), out.mutable_data());
    return out;
}

template <typename T>
py::array warp_typed(const py::object& img_obj, const Affine& m, int w, int h, Border border,
                     double fill) {
    auto img = expect<T>(img_obj, "image", "uint8 or float32 array of shape (H, W)", {-1, -1});
    if (img.shape(0) < 1 || img.shape(1) < 1) throw std::invalid_argument("image is empty");
    py::array_t<T> out({h, w});
    T* dst = out.mutable_data();
    const T* src = img.data();
    const int sw = static_cast<int>(img.shape(1)), sh = static_cast<int>(img.shape(0));
    py::gil_scoped_release release;
    warp_affine(src, sw, sh, sw, m, dst, w, h, w, border, fill);
    return out;
}

py::array warp_affine_py(const py::object& img, const py::object& m_obj, std::pair<int, int> size,
                         const std::string& border, double fill) {
    auto mat = expect<double>(m_obj, "M", "float64 array of shape (2, 3)", {2, 3});
    Affine m;
    std::copy(mat.data(), mat.data() + 6, m.begin());
    const auto [w, h] = size;
    if (w < 1 || h < 1 || w > 16384 || h > 16384)
        throw std::invalid_argument("size must be (width, height) with each in [1, 16384], got (" +
                              std::to_string(w) + ", " + std::to_string(h) + ")");
    Border b;
    if (border == "replicate") b = Border::Replicate;
    else if (border == "constant") b = Border::Constant;
    else throw std::invalid_argument("border must be 'replicate' or 'constant', got '" + border + "'");
    if (py_bind::has_dtype<float>(img)) return warp_typed<float>(img, m, w, h, b, fill);
    return warp_typed<std::uint8_t>(img, m, w, h, b, fill);
}

}  // namespace

void bind_alignment(py::module_& m) {
    m.def("estimate_similarity", &estimate_similarity_py, py::arg("src"), py::arg("dst"));
    m.def("warp_affine", &warp_affine_py, py::arg("image"), py::arg("M"), py::arg("size"),
          py::kw_only(), py::arg("border") = "replicate", py::arg("fill") = 0.0);
}
