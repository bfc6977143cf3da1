#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <mutex>

#include "microexpr/core.hpp"
#include "ndarray.hpp"

namespace py = pybind11;
using namespace microexpr;
using py_bind::expect;

namespace {

struct LockedSpectra {
    LockedSpectra(int c, double r, double w, std::vector<Band> b, bool d) : s(c, r, w, std::move(b), d) {}
    Spectra s;
    std::mutex mutex;
};

std::vector<Band> to_bands(const py::object& obj) {
    std::vector<Band> bands;
    for (const py::handle& item : obj) {
        if (py::len(item) != 2)
            throw py::type_error("bands: expected (lo, hi) pairs in Hz, got " +
                                 std::string(py::str(py::repr(item))));
        auto pair = item.cast<std::pair<double, double>>();
        bands.push_back({pair.first, pair.second});
    }
    return bands;
}

py::array push_py(LockedSpectra& self, double t, const py::object& values_obj) {
    const int c = self.s.n_channels();
    auto values = expect<double>(values_obj, "values",
                                 ("float64 array of shape (" + std::to_string(c) + ",)").c_str(), {c});
    py::array_t<double> out({py::ssize_t(c), py::ssize_t(self.s.n_bands())});
    const double* v = values.data();
    double* o = out.mutable_data();
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(self.mutex);
    self.s.push(t, v, o);
    return out;
}

py::tuple spectrogram_py(const py::object& t_obj, const py::object& x_obj, double rate, double window,
                         double hop, bool detrend) {
    auto t = expect<double>(t_obj, "t", "float64 array of shape (N,)", {-1});
    const py::ssize_t n = t.shape(0);
    const std::string n_str = std::to_string(n);
    if (!py::isinstance<py::array>(x_obj))
        throw py::type_error("x: expected float64 array of shape (" + n_str + ",) or (C, " + n_str + "), got " +
                             py_bind::describe(x_obj));
    if ((py::reinterpret_borrow<py::array>(x_obj).ndim() != 1 &&
                                              py::reinterpret_borrow<py::array>(x_obj).ndim() != 2))
        throw std::invalid_argument("x: expected float64 array of shape (" + n_str + ",) or (C, " + n_str +
                              "), got " + py_bind::describe(x_obj));
    const bool multi = py::reinterpret_borrow<py::array>(x_obj).ndim() == 2;
    auto x = multi ? expect<double>(x_obj, "x", ("float64 array of shape (C, " + n_str + ")").c_str(), {-1, n})
                   : expect<double>(x_obj, "x", ("float64 array of shape (" + n_str + ",)").c_str(), {n});
    const py::ssize_t channels = multi ? x.shape(0) : 1;
    if (channels < 1) throw std::invalid_argument("x: expected at least one channel, got shape (0, " + n_str + ")");
    std::vector<Spectrogram> results(static_cast<std::size_t>(channels));
    {
        const double* tp = t.data();
        const double* xp = x.data();
        py::gil_scoped_release release;
        for (py::ssize_t c = 0; c < channels; ++c)
            results[c] = spectrogram(tp, xp + c * n, static_cast<std::size_t>(n), rate, window, hop, detrend);
    }
    const Spectrogram& first = results.front();
    const py::ssize_t nt = static_cast<py::ssize_t>(first.times.size());
    const py::ssize_t nf = static_cast<py::ssize_t>(first.freqs.size());
    py::array_t<double> times(nt), freqs(nf);
    std::copy(first.times.begin(), first.times.end(), times.mutable_data());
    std::copy(first.freqs.begin(), first.freqs.end(), freqs.mutable_data());
    py::array_t<double> power = multi ? py::array_t<double>({channels, nt, nf}) : py::array_t<double>({nt, nf});
    double* pp = power.mutable_data();
    for (const auto& r : results) pp = std::copy(r.power.begin(), r.power.end(), pp);
    return py::make_tuple(times, freqs, power);
}

}  // namespace

void bind_spectra(py::module_& m) {
    py::class_<LockedSpectra>(m, "Spectra")
        .def(py::init([](int n_channels, double rate, double window, const py::object& bands, bool detrend) {
                 return new LockedSpectra(n_channels, rate, window, to_bands(bands), detrend);
             }),
             py::arg("n_channels"), py::kw_only(), py::arg("rate"), py::arg("window"), py::arg("bands"),
             py::arg("detrend") = true)
        .def("push", &push_py, py::arg("t"), py::arg("values"))
        .def("energies", [](LockedSpectra& self) {
            py::array_t<double> out({py::ssize_t(self.s.n_channels()), py::ssize_t(self.s.n_bands())});
            std::lock_guard<std::mutex> lock(self.mutex);
            self.s.energies(out.mutable_data());
            return out;
        })
        .def("reset", [](LockedSpectra& self) {
            std::lock_guard<std::mutex> lock(self.mutex);
            self.s.reset();
        })
        .def_property_readonly("n_channels", [](const LockedSpectra& self) { return self.s.n_channels(); })
        .def_property_readonly("rate", [](const LockedSpectra& self) { return self.s.rate(); })
        .def_property_readonly("window", [](const LockedSpectra& self) { return self.s.window(); })
        .def_property_readonly("bands", [](const LockedSpectra& self) {
            py::list out;
            for (const Band& b : self.s.bands()) out.append(py::make_tuple(b.lo, b.hi));
            return out;
        })
        .def_property_readonly("probe_frequencies", [](const LockedSpectra& self) {
            return py::array_t<double>(static_cast<py::ssize_t>(self.s.probe_frequencies().size()),
                                       self.s.probe_frequencies().data());
        })
        .def_property_readonly("samples", [](const LockedSpectra& self) { return self.s.samples(); });
    m.def("spectrogram", &spectrogram_py, py::arg("t"), py::arg("x"), py::kw_only(), py::arg("rate"),
          py::arg("window"), py::arg("hop"), py::arg("detrend") = true);
}
