// Schemas of the APro ops, registered with torch's dispatcher. Kernels per
// dispatch key: CPU in cpu/ (one op per file, TORCH_LIBRARY_IMPL); CUDA is the
// device-generic torch code of apro/device_ops.py, which calls the two host ops
// below for union-find; the fake (meta) kernels are in apro/fake_kernels.py.
#include <Python.h>
#include <torch/library.h>

TORCH_LIBRARY(apro, m) {
  m.def("minimum_spanning_tree(Tensor guide) -> Tensor");
  m.def("minimum_spanning_tree_from_weights(Tensor weights, int height, int width) -> Tensor");
  m.def(
      "global_propagate(Tensor values, Tensor? guide, Tensor tree, Tensor image_index, float zeta) -> Tensor");
  m.def("tree_filter(Tensor values, Tensor? guide, Tensor tree, Tensor image_index, float zeta) -> Tensor");
  // Host halves of the device path (apro/device_ops.py): union-find on integer edge orders.
  m.def("kruskal_from_order(Tensor order, int height, int width) -> Tensor");
  m.def("gp_layouts(Tensor order, Tensor tree, Tensor tree_index) -> (Tensor, Tensor, Tensor, Tensor)");
  m.def(
      "local_propagate(Tensor image, Tensor values, Tensor? mask, Tensor image_index, int kernel_size, "
      "float zeta, int iterations) -> Tensor");
}

// The ops build constant targets and have no derivative: below autograd they
// run as they are, and their outputs never require grad.
TORCH_LIBRARY_IMPL(apro, Autograd, m) {
  for (const char* name : {"minimum_spanning_tree", "minimum_spanning_tree_from_weights", "global_propagate",
                           "tree_filter", "kruskal_from_order", "gp_layouts", "local_propagate"})
    m.impl(name, torch::CppFunction::makeFallthrough());
}

// `import apro._C` loads this library, whose static initialisers register the
// ops above; the module itself is empty.
PyMODINIT_FUNC PyInit__C(void) {
  static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module);
}
