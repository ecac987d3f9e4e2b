// Schemas of the APro ops. Kernels live in cpu/, one op per file, registered
// with TORCH_LIBRARY_IMPL for the CPU; on other devices apro/device_ops.py
// computes them with torch, calling the two host ops below for union-find.
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

// `import apro._C` loads this library, whose static initialisers register the
// ops above; the module itself is empty.
PyMODINIT_FUNC PyInit__C(void) {
  static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module);
}
