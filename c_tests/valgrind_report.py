#!/usr/bin/env python3
"""Judge one valgrind XML file (--xml=yes --xml-file=...) by gilgate's policy.

usage: valgrind_report.py memcheck|thread XML_FILE [LABEL]

Prints one summary line (PASS/FAIL LABEL: counts) and, for every failure, the offending record
with its stack. Exit status: 0 pass, 1 fail (including a missing or truncated XML file).

memcheck policy
  * Any non-leak error (invalid read/write, uninitialised value, invalid/mismatched free, ...)
    that survived c_tests/valgrind.supp is a failure, wherever it is.
  * A "definitely lost" / "indirectly lost" record is a failure when
      - the block was allocated by gilgate itself (the first frame below the allocator is in
        libgilgate.so: Rust's __rust_alloc & co. live there), or
      - the block was allocated inside libpython during a call gilgate made (a libgilgate frame
        further down the stack), unless the libpython part of the stack matches one of the
        KNOWN_CPYTHON_LEAKS signatures below (CPython's own leaks across Py_FinalizeEx, which
        happen whoever called the API).
    Leaks with no gilgate frame at all (CPython called by the host, or the host itself) are
    counted and reported, never a failure: CPython 3.8-3.13 do not free everything in
    Py_FinalizeEx (interned strings, static types, module state), and the test hosts keep a few
    references on purpose.
  * "possibly lost" records are counted; one allocated by gilgate itself is printed as a WARN.

thread policy (drd or helgrind)
  * A report whose access stack contains a gilgate frame (libgilgate.so, gilgate::, gg_) is a
    failure. Reports that are false positives of the tool are removed by narrow, justified
    entries in c_tests/valgrind.supp, never here.
  * Every other report (all of the access stack in libpython/libc/ld.so/the test host) is
    CPython's or the host's and is counted, not a failure: CPython's GIL and eval-breaker use
    hand-rolled atomics and a mutex+condvar protocol that DRD/helgrind do not model.
    For drd only the first stack is the racing access (the others are segment boundaries of
    the other thread, i.e. its last synchronisation points); for helgrind every stack of a
    Race record is an access.
"""
import collections
import os
import re
import sys
import xml.etree.ElementTree as ET

# Signatures of CPython's own leaks across Py_FinalizeEx, matched against function names in
# the libpython part of a leak's allocation stack (between the allocator and the first gilgate
# frame). Each is a leak CPython has whoever calls the API; none is an object gilgate owns.
KNOWN_CPYTHON_LEAKS = [
    # Interned strings: 3.12 makes interned strings immortal and Py_FinalizeEx does not free
    # them (fixed in 3.13, which frees the interned dict at finalization). PyDict_SetItemString
    # and PyObject_SetAttrString intern their key/name in 3.12; the interning frame is often
    # inlined away, so these callers stand for it.
    ("interned string (3.12 immortal interned strings are never freed)",
     re.compile(r"^(PyUnicode_InternFromString|PyUnicode_InternInPlace|_PyUnicode_InternInPlace"
                r"|_PyUnicode_InternMortal|_PyUnicode_InternImmortal|intern_common"
                r"|PyDict_SetItemString|PyObject_SetAttrString|_PyUnicode_FromId)$")),
]

# Whole-stack signatures (the libpython part must consist of exactly these functions, innermost
# first, on the named libpython): CPython's own leaks that a single function name would match
# too broadly.
KNOWN_CPYTHON_LEAK_STACKS = [
    # 3.14+: the thread state PyGILState_Ensure allocated for a thread that is still inside
    # that gilstate level (GIL released) when Py_FinalizeEx runs is never freed: finalization
    # does not delete the thread states of threads still bound to them. Reproduced without
    # gilgate by c_tests/vg_tstate_leak_raw.c (docs/valgrind.md); api_edges.c's nested_worker
    # does the same through gilgate_gilstate_ensure (and must: the thread may not call CPython
    # after finalization, so nothing can free it).
    ("thread state of a thread inside a gilstate level across Py_FinalizeEx (3.14+)",
     re.compile(r"^libpython3\.(1[4-9]|[2-9][0-9])d?\.so"),
     ["_PyMem_RawCalloc", "PyMem_RawCalloc", "alloc_threadstate", "new_threadstate",
      "PyGILState_Ensure"]),
]


def known_stack(py_frames):
    """py_frames: the (obj, fn) libpython frames of a leak, innermost first."""
    fns = [fn for _, fn in py_frames]
    for name, obj_rx, want in KNOWN_CPYTHON_LEAK_STACKS:
        if fns == want and all(obj_rx.match(obj) for obj, _ in py_frames):
            return name
    return None

ALLOCATOR_OBJ = re.compile(r"^(vgpreload_.*|ld-linux.*|libc\.so.*|libstdc\+\+.*)$")


def is_gilgate(frame):
    obj, fn = frame
    return obj.startswith("libgilgate") or "gilgate::" in fn or fn.startswith("gg_")


def frames(stack):
    if stack is None:
        return []
    return [(os.path.basename(f.findtext("obj") or ""), f.findtext("fn") or "??")
            for f in stack.findall("frame")]


def what(err):
    return (err.findtext("xwhat/text") or err.findtext("what") or "").strip()


def fmt_stack(fr, indent="      "):
    return "\n".join(f"{indent}{fn}  ({obj})" for obj, fn in fr)


def load(path):
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        return None, f"cannot read valgrind XML {path}: {e} (valgrind crashed or was killed?)"
    states = [s.findtext("state") for s in root.findall("status")]
    if "FINISHED" not in states:
        return None, f"{path}: valgrind did not finish"
    return root, None


def suppcounts(root):
    out = {}
    for p in root.findall("suppcounts/pair"):
        out[p.findtext("name")] = int(p.findtext("count") or 0)
    return out


def memcheck(root, label):
    fails, warns = [], []
    c = collections.Counter()
    leak_bytes = collections.Counter()
    for err in root.findall("error"):
        kind = err.findtext("kind") or "?"
        fr = frames(err.find("stack"))
        if not kind.startswith("Leak_"):
            c["errors"] += 1
            fails.append(f"{kind}: {what(err)}\n{fmt_stack(fr)}")
            continue
        nbytes = int(err.findtext("xwhat/leakedbytes") or 0)
        owner = next((f for f in fr if not ALLOCATOR_OBJ.match(f[0])), ("", ""))
        gg_idx = next((i for i, f in enumerate(fr) if is_gilgate(f)), None)
        if kind in ("Leak_DefinitelyLost", "Leak_IndirectlyLost"):
            if is_gilgate(owner):
                c["gilgate_leaks"] += 1
                fails.append(f"{kind} allocated by gilgate: {what(err)}\n{fmt_stack(fr)}")
            elif gg_idx is not None:
                py_frames = [f for f in fr[:gg_idx] if f[0].startswith("libpython")]
                py_part = [fn for _, fn in py_frames]
                sig = next((name for name, rx in KNOWN_CPYTHON_LEAKS
                            if any(rx.match(fn) for fn in py_part)), None) or known_stack(py_frames)
                if sig:
                    c["cpython_leaks_via_gilgate"] += 1
                    leak_bytes["cpython"] += nbytes
                else:
                    c["gilgate_leaks"] += 1
                    fails.append(f"{kind} inside CPython during a gilgate call, no known CPython "
                                 f"leak signature: {what(err)}\n{fmt_stack(fr)}")
            else:
                c["cpython_leaks"] += 1
                leak_bytes["cpython"] += nbytes
        elif kind == "Leak_PossiblyLost":
            c["possibly_lost"] += 1
            if is_gilgate(owner):
                warns.append(f"possibly lost, allocated by gilgate: {what(err)}\n{fmt_stack(fr)}")
    sup = suppcounts(root)
    nsup = sum(sup.values())
    line = (f"errors={c['errors']} gilgate_leaks={c['gilgate_leaks']} "
            f"cpython_leaks={c['cpython_leaks'] + c['cpython_leaks_via_gilgate']} "
            f"(via_gilgate_known={c['cpython_leaks_via_gilgate']}, {leak_bytes['cpython']} bytes) "
            f"possibly_lost={c['possibly_lost']} suppressed={nsup}")
    return fails, warns, line


def thread(root, label):
    fails = []
    c = collections.Counter()
    tool = root.findtext("tool") or "?"
    for err in root.findall("error"):
        kind = err.findtext("kind") or "?"
        stacks = [frames(s) for s in err.iter("stack")]
        if tool == "drd" or kind != "Race":
            access = stacks[:1]
        else:
            access = stacks
        if any(is_gilgate(f) for st in access for f in st):
            c["gilgate"] += 1
            body = "\n    --\n".join(fmt_stack(st) for st in stacks[:3])
            fails.append(f"{kind}: {what(err)}\n{body}")
        else:
            c["cpython:" + kind] += 1
    sup = suppcounts(root)
    other = sum(v for k, v in c.items() if k.startswith("cpython:"))
    kinds = ",".join(f"{k[8:]}={v}" for k, v in sorted(c.items()) if k.startswith("cpython:"))
    supd = ",".join(f"{k}={v}" for k, v in sorted(sup.items()))
    line = (f"{tool}: gilgate_reports={c['gilgate']} cpython_or_host_reports={other}"
            f"{' (' + kinds + ')' if kinds else ''} suppressed={sum(sup.values())}"
            f"{' (' + supd + ')' if supd else ''}")
    return fails, [], line


def main(argv):
    if len(argv) < 3 or argv[1] not in ("memcheck", "thread"):
        print(__doc__, file=sys.stderr)
        return 2
    mode, path = argv[1], argv[2]
    label = argv[3] if len(argv) > 3 else os.path.basename(path)
    root, problem = load(path)
    if root is None:
        print(f"FAIL {label}: {problem}")
        return 1
    fails, warns, line = (memcheck if mode == "memcheck" else thread)(root, label)
    for w in warns:
        print(f"  WARN {w}", file=sys.stderr)
    for f in fails[:20]:
        print(f"  FAILURE {f}", file=sys.stderr)
    if len(fails) > 20:
        print(f"  ... and {len(fails) - 20} more failures", file=sys.stderr)
    print(f"{'FAIL' if fails else 'PASS'} {label}: {line}")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
