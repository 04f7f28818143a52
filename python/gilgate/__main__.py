"""python -m gilgate --includedir|--cmakedir|--libdir|--pkgconfigdir|--preload|--version"""

import sys

import gilgate

_OPTIONS = {
    "--includedir": gilgate.get_include,
    "--cmakedir": gilgate.get_cmake_dir,
    "--libdir": gilgate.get_library_dir,
    "--pkgconfigdir": gilgate.get_pkgconfig_dir,
    "--preload": gilgate.get_library,
    "--prefix": gilgate.get_prefix,
    "--version": lambda: gilgate.__version__,
}

_USAGE = "usage: python -m gilgate " + "|".join(_OPTIONS) + "\n" \
    "  --preload: the library to put in LD_PRELOAD (or run programs with gilgate-run)"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(_USAGE)
        return 0 if argv else 2
    for a in argv:
        if a not in _OPTIONS:
            sys.stderr.write("gilgate: unknown option %r\n%s\n" % (a, _USAGE))
            return 2
    for a in argv:
        print(_OPTIONS[a]())
    return 0


if __name__ == "__main__":
    sys.exit(main())
