// Checks at the Python boundary: precise messages, never a silent copy.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace microexpr::py_bind {

namespace py = pybind11;

// "float32 array of shape (3, 4)" for messages.
inline std::string describe(const py::handle& obj) {
    if (!py::isinstance<py::array>(obj))
        return std::string(py::str(py::type::of(obj).attr("__name__")));
    auto a = py::reinterpret_borrow<py::array>(obj);
    std::string s = std::string(py::str(a.dtype())) + " array of shape (";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) {
        if (i) s += ", ";
        s += std::to_string(a.shape(i));
    }
    if (a.ndim() == 1) s += ",";
    s += ")";
    if (!(a.flags() & py::array::c_style)) s += " (not C-contiguous)";
    return s;
}

// Returns obj as an array of T when its dtype is exactly T and it is
// C-contiguous with the given number of dimensions (and shape entries that
// are not -1); otherwise throws TypeError (dtype) or ValueError (the rest).
template <typename T>
py::array_t<T, py::array::c_style> expect(const py::handle& obj, const char* name,
                                         const char* expected, std::vector<py::ssize_t> shape) {
    if (!py::isinstance<py::array>(obj) || !py::reinterpret_borrow<py::array>(obj).dtype().is(py::dtype::of<T>()))
        throw py::type_error(std::string(name) + ": expected " + expected + ", got " + describe(obj));
    auto a = py::reinterpret_borrow<py::array>(obj);
    bool ok = a.ndim() == static_cast<py::ssize_t>(shape.size());
    for (std::size_t i = 0; ok && i < shape.size(); ++i)
        ok = shape[i] < 0 || a.shape(static_cast<py::ssize_t>(i)) == shape[i];
    if (!ok) throw std::invalid_argument(std::string(name) + ": expected " + expected + ", got " + describe(obj));
    if (!(a.flags() & py::array::c_style))
        throw std::invalid_argument(std::string(name) + ": expected a C-contiguous array (use numpy.ascontiguousarray), got " +
                              describe(obj));
    return py::reinterpret_borrow<py::array_t<T, py::array::c_style>>(obj);
}

template <typename T>
bool has_dtype(const py::handle& obj) {
    return py::isinstance<py::array>(obj) && py::reinterpret_borrow<py::array>(obj).dtype().is(py::dtype::of<T>());
}

}  // namespace microexpr::py_bind
