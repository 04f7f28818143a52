#!/usr/bin/env python3
"""Build the `gilgate` wheel (PEP 427) from this checkout, with the standard library only.

    python3 scripts/build-wheel.py [--out DIR] [--no-cargo]

Runs `cargo build --release -p gilgate -p gilgate-check` (skipped with --no-cargo or
GILGATE_SKIP_CARGO=1; CARGO_TARGET_DIR is honoured), installs into a staging prefix with
cmake/install.sh (the same CMake package and .pc file, relocatable), and writes
DIR/gilgate-<version>-py3-none-manylinux_2_<N>_<arch>.whl (DIR defaults to dist/). Prints the
wheel's path on the last line.

The package directory `gilgate/` is itself an install prefix:
    gilgate/lib/libgilgate.so.0      the library (its soname file; wheels hold no symlinks)
    gilgate/lib/libgilgate.so        a GNU ld linker script, INPUT(libgilgate.so.0), so that
                                     -L<libdir> -lgilgate links and records libgilgate.so.0
    gilgate/include/gilgate.h, gilgate.hpp, gilgate.pxd, gilgate_pep788.h, gilgate_pep788.pxd
    gilgate/lib/cmake/gilgate/       gilgateConfig.cmake (falls back to the soname file),
                                     gilgateConfigVersion.cmake
    gilgate/lib/pkgconfig/gilgate.pc prefix=${pcfiledir}/../..
    gilgate/bin/gilgate-run          tools/gilgate-run; finds ../lib/libgilgate.so.0
    gilgate/libexec/gilgate/gilgate-check
plus the Python module (python/gilgate) and the console scripts gilgate-run / gilgate-check.

The tag is py3-none (the library never links libpython: one wheel serves every CPython 3.8+)
and manylinux_2_<N>_<arch>, N the newest GLIBC_2.N symbol version the ELF files need (read with
readelf). The ELF files are stripped of debug info (strip --strip-debug; symbols kept). The archive is reproducible: sorted entries, fixed timestamps (SOURCE_DATE_EPOCH if set).
"""

import argparse
import base64
import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def die(msg):
    sys.stderr.write("build-wheel: error: %s\n" % msg)
    sys.exit(1)


def cargo_field(name):
    section = None
    with open(os.path.join(ROOT, "Cargo.toml")) as f:
        for line in f:
            m = re.match(r"^\[(.*)\]\s*$", line)
            if m:
                section = m.group(1)
                continue
            m = re.match(r'^%s\s*=\s*"(.*)"' % name, line)
            if section == "package" and m:
                return m.group(1)
    die("no %s in Cargo.toml's [package]" % name)


def glibc_floor(paths):
    """The newest GLIBC_2.N version any of the ELF files needs: N."""
    newest = 0
    for p in paths:
        out = subprocess.run(["readelf", "-V", "-W", p], check=True, stdout=subprocess.PIPE,
                             universal_newlines=True).stdout
        for m in re.finditer(r"GLIBC_2\.(\d+)", out):
            newest = max(newest, int(m.group(1)))
    return newest


def needed(path):
    out = subprocess.run(["readelf", "-d", "-W", path], check=True, stdout=subprocess.PIPE,
                         universal_newlines=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[(.*)\]", out)


def record_hash(data):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "dist"), help="output directory (dist/)")
    ap.add_argument("--no-cargo", action="store_true", help="do not run cargo (use the existing build)")
    args = ap.parse_args()
    t0 = time.time()

    version = cargo_field("version")
    description = cargo_field("description")
    license_ = cargo_field("license")
    if not re.match(r"^\d+\.\d+\.\d+$", version):
        die("version %r in Cargo.toml is not MAJOR.MINOR.PATCH" % version)
    major = version.split(".")[0]
    soname = "libgilgate.so." + major

    skip_cargo = args.no_cargo or os.environ.get("GILGATE_SKIP_CARGO") == "1"
    if not skip_cargo:
        print("build-wheel: cargo build --release -p gilgate -p gilgate-check", flush=True)
        subprocess.run(["cargo", "build", "--release", "-p", "gilgate", "-p", "gilgate-check"],
                       cwd=ROOT, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    if not os.path.isabs(target):
        target = os.path.join(ROOT, target)
    if not os.path.isfile(os.path.join(target, "release", "gilgate-check")):
        die("%s/release/gilgate-check not built (cargo build --release -p gilgate-check)" % target)

    stage = tempfile.mkdtemp(prefix="gilgate-wheel.")
    try:
        prefix = os.path.join(stage, "prefix")
        env = dict(os.environ, GILGATE_SKIP_CARGO="1", CARGO_TARGET_DIR=target)
        subprocess.run(["sh", os.path.join(ROOT, "cmake", "install.sh"), prefix], env=env,
                       check=True, stdout=subprocess.DEVNULL)
        lib = os.path.join(prefix, "lib", "libgilgate.so." + version)
        check = os.path.join(prefix, "libexec", "gilgate", "gilgate-check")
        # The staged copies lose their DWARF (the release profile's debug = 1): a third of the size.
        if shutil.which("strip"):
            subprocess.run(["strip", "--strip-debug", lib, check], check=True)
        bad = [n for n in needed(lib) if n.startswith("libpython")]
        if bad:
            die("%s needs %s: the wheel must not depend on libpython" % (lib, bad))

        # (archive name, source file or bytes, mode)
        files = []
        def add_file(arc, src, mode=0o644):
            files.append((arc, src, mode))
        for name in ("__init__.py", "__main__.py", "_scripts.py"):
            add_file("gilgate/" + name, os.path.join(ROOT, "python", "gilgate", name))
        add_file("gilgate/_version.py", ('__version__ = "%s"\n' % version).encode())
        add_file("gilgate/lib/" + soname, lib, 0o755)
        add_file("gilgate/lib/libgilgate.so",
                 ("/* GNU ld script: link the soname file (wheels hold no symlinks). */\n"
                  "INPUT(%s)\n" % soname).encode())
        for h in ("gilgate.h", "gilgate.hpp", "gilgate.pxd", "gilgate_pep788.h", "gilgate_pep788.pxd"):
            add_file("gilgate/include/" + h, os.path.join(prefix, "include", h))
        for sub in ("lib/cmake/gilgate", "lib/pkgconfig"):
            for n in sorted(os.listdir(os.path.join(prefix, sub))):
                add_file("gilgate/%s/%s" % (sub, n), os.path.join(prefix, sub, n))
        add_file("gilgate/bin/gilgate-run", os.path.join(prefix, "bin", "gilgate-run"), 0o755)
        add_file("gilgate/libexec/gilgate/gilgate-check", check, 0o755)

        arch = platform.machine()
        glibc = glibc_floor([lib, check])
        if glibc < 17:
            glibc = 17
        tag = "py3-none-manylinux_2_%d_%s" % (glibc, arch)
        dist_info = "gilgate-%s.dist-info" % version
        readme = open(os.path.join(ROOT, "README.md")).read()
        metadata = (
            "Metadata-Version: 2.1\nName: gilgate\nVersion: %s\nSummary: %s\nLicense: %s\n"
            "Requires-Python: >=3.8\nClassifier: Programming Language :: C\n"
            "Classifier: Programming Language :: Python :: Implementation :: CPython\n"
            "Classifier: Operating System :: POSIX :: Linux\n"
            "Description-Content-Type: text/markdown\n\n%s"
            % (version, description, license_, readme)).encode()
        wheel_meta = ("Wheel-Version: 1.0\nGenerator: gilgate scripts/build-wheel.py\n"
                      "Root-Is-Purelib: false\nTag: %s\n" % tag).encode()
        entry_points = (b"[console_scripts]\ngilgate-check = gilgate._scripts:check\n"
                        b"gilgate-run = gilgate._scripts:run\n")
        add_file(dist_info + "/METADATA", metadata)
        add_file(dist_info + "/WHEEL", wheel_meta)
        add_file(dist_info + "/entry_points.txt", entry_points)
        add_file(dist_info + "/top_level.txt", b"gilgate\n")

        epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "315532800"))  # 1980-01-01
        date_time = time.gmtime(max(epoch, 315532800))[:6]
        os.makedirs(args.out, exist_ok=True)
        whl = os.path.join(args.out, "gilgate-%s-%s.whl" % (version, tag))
        tmp = whl + ".tmp"
        record = []
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
            def write(arc, data, mode):
                zi = zipfile.ZipInfo(arc, date_time)
                zi.external_attr = (0o100000 | mode) << 16
                zi.compress_type = zipfile.ZIP_DEFLATED
                z.writestr(zi, data)
                record.append("%s,%s,%d" % (arc, record_hash(data), len(data)))
            # dist-info last (the spec's recommendation), everything else sorted
            for arc, src, mode in sorted(files, key=lambda f: (f[0].startswith(dist_info), f[0])):
                data = src if isinstance(src, bytes) else open(src, "rb").read()
                write(arc, data, mode)
            record.append(dist_info + "/RECORD,,")
            zi = zipfile.ZipInfo(dist_info + "/RECORD", date_time)
            zi.external_attr = 0o100644 << 16
            zi.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(zi, "\n".join(record) + "\n")
        os.replace(tmp, whl)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    print("build-wheel: gilgate %s, %s, %d bytes, %.1f s" % (version, tag, os.path.getsize(whl), time.time() - t0))
    print(whl)


if __name__ == "__main__":
    main()
