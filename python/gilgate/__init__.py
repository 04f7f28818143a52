"""gilgate: a finalization-safe CPython thread-state API for C and C++ hosts.

This package carries the native library, its headers and its CMake / pkg-config files; it has no
Python API of its own beyond finding them (like ``pybind11.get_cmake_dir()``):

    gilgate.get_include()     directory with gilgate.h, gilgate.hpp, gilgate.pxd
    gilgate.get_cmake_dir()   directory with gilgateConfig.cmake (find_package(gilgate CONFIG))
    gilgate.get_library()     the library (libgilgate.so.0), e.g. for LD_PRELOAD
    gilgate.get_pkgconfig_dir()  directory with gilgate.pc (PKG_CONFIG_PATH)

``python -m gilgate --includedir|--cmakedir|--libdir|--pkgconfigdir|--preload|--version`` prints
the same. The console scripts ``gilgate-run`` and ``gilgate-check`` run the launcher and its
``--check`` from this package.
"""

import os

from ._version import __version__

__all__ = ["__version__", "get_include", "get_cmake_dir", "get_library", "get_library_dir",
           "get_pkgconfig_dir", "get_prefix"]

_HERE = os.path.dirname(os.path.abspath(__file__))


def get_prefix():
    """The install prefix inside this package: include/, lib/, bin/, libexec/."""
    return _HERE


def get_include():
    """Directory holding gilgate.h, gilgate.hpp and gilgate.pxd."""
    return os.path.join(_HERE, "include")


def get_library_dir():
    """Directory holding libgilgate.so.0 and libgilgate.so (a linker script: -L<dir> -lgilgate)."""
    return os.path.join(_HERE, "lib")


def get_cmake_dir():
    """Directory holding gilgateConfig.cmake: pass it as gilgate_DIR or on CMAKE_PREFIX_PATH."""
    return os.path.join(_HERE, "lib", "cmake", "gilgate")


def get_pkgconfig_dir():
    """Directory holding gilgate.pc: put it on PKG_CONFIG_PATH."""
    return os.path.join(_HERE, "lib", "pkgconfig")


def get_library():
    """The shared library itself (its soname file, libgilgate.so.0): for LD_PRELOAD or ctypes."""
    return os.path.join(_HERE, "lib", "libgilgate.so.0")
