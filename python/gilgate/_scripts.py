"""The console scripts gilgate-run and gilgate-check: exec the package's launcher / checker."""

import os
import signal
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))


def _exec(argv):
    # CPython ignores SIGPIPE and SIGXFSZ; ignored signals survive exec, so give the program
    # the dispositions it would have had without this Python wrapper.
    for name in ("SIGPIPE", "SIGXFSZ"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_DFL)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execv(argv[0], argv)
    except OSError as e:
        sys.stderr.write("%s: cannot run %s: %s\n" % (os.path.basename(sys.argv[0]), argv[0], e))
        return 126


def run():
    """gilgate-run: tools/gilgate-run (POSIX sh) from this package; it finds lib/libgilgate.so.0."""
    return _exec(["/bin/sh", os.path.join(_HERE, "bin", "gilgate-run")] + sys.argv[1:])


def check():
    """gilgate-check: the ELF checker behind gilgate-run --check."""
    return _exec([os.path.join(_HERE, "libexec", "gilgate", "gilgate-check")] + sys.argv[1:])
