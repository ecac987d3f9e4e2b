"""Builds the compiled APro ops (``apro._C``) from ``csrc/``.

Run through pip (``pip install -e . --no-build-isolation``) or directly
(``python setup.py build_ext --inplace``); both need torch installed first.
There are no CUDA sources: on CUDA tensors the ops run as device-generic torch
(apro/device_ops.py), which needs only the host union-find compiled here.
"""
import glob
import os

from setuptools import setup
from torch.utils.cpp_extension import BuildExtension, CppExtension

HERE = os.path.dirname(os.path.abspath(__file__))


def ops_extension():
    sources = sorted(glob.glob(os.path.join("csrc", "*.cpp")) + glob.glob(os.path.join("csrc", "cpu", "*.cpp")))
    # -O3 and OpenMP: at::parallel_for is inlined here, so it only runs in
    # parallel when this unit is compiled with -fopenmp (torch ships libgomp).
    # -fno-trapping-math (as torch itself): lets float selects vectorise.
    cxx = ["-O3", "-fopenmp", "-DNDEBUG", "-g0", "-std=c++20", "-fno-trapping-math", "-fno-math-errno"]
    return CppExtension(
        "apro._C",
        sources,
        include_dirs=[os.path.join(HERE, "csrc")],
        extra_compile_args={"cxx": cxx},
        extra_link_args=["-fopenmp"],
    )


setup(
    ext_modules=[ops_extension()],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
)
