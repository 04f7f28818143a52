#!/usr/bin/env python3
"""Exit latency, raw vs through gilgate (benches/finalize.sh runs this after building gilgate).

  python3 benches/finalize.py RUNS LIB [OUT]

Programs (each a whole process, wall time from spawn to reaped, RUNS interleaved runs per
CPython x program x {raw, gilgate}):
  polite  c_tests/idioms_ext.c in pybind11's idiom (4 native threads: PyThreadState_New +
          AcquireThread, a Python callback, Clear + DeleteCurrent, in a loop), stopped by an
          atexit handler registered before they ran: still calling in when Py_FinalizeEx starts;
  rude    benches/exit_rude.{c,py}: 4 native threads of a ctypes-loaded library call a
          CFUNCTYPE callback in a loop; the main thread returns without stopping them;
  daemon  benches/exit_daemon{_ext.c,.py}: 8 Python daemon threads loop on an extension function
          doing Py_BEGIN_ALLOW_THREADS; usleep(2000); Py_END_ALLOW_THREADS; the main thread
          returns.
"gilgate" = LD_PRELOAD=LIB and no GILGATE_* variable: gilgate's defaults. "raw" = no preload.
The drain column comes from separate, untimed runs with GILGATE_SHOW_STATS=1 (max(3, RUNS/4) per
cell): the stats line written at exit lengthens the exit itself, and on a statically linked
interpreter (whose API calls gilgate cannot gate) that wider window let the program's threads
call into the finalized runtime and crash it (Debian 3.11: 8 of 30 runs with the line, 1 of 30
without, 0 of 30 raw, 2026-12-06).

CPythons: every pyenv CPython >= 3.8, Debian's /usr/bin/python3.11 (with headers), Debian
unstable 3.14/3.15 if scripts/debian-python.sh has their trees cached (run through the tree's own
loader, as harness/src/lib.rs does). Missing ones are printed as absent. Env:
  FINALIZE_PROGRAMS="polite rude daemon"   subset of programs
  FINALIZE_PYTHONS="3.12 debian-unstable"   substring filter on CPython names
  FINALIZE_TIMEOUT=30                       seconds before a run is killed (counted as "timeout")
Raw per-run data: OUT/<cpython>/<program>-<mode>.tsv (ms, exit, drain_us, drain_timeouts).
"""
import json, os, signal, statistics, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 20
LIB = sys.argv[2] if len(sys.argv) > 2 else str(ROOT / "target/release/libgilgate.so")
OUT = Path(sys.argv[3]) if len(sys.argv) > 3 else ROOT / "target/bench/finalize"
PROGRAMS = os.environ.get("FINALIZE_PROGRAMS", "polite rude daemon").split()
ONLY = os.environ.get("FINALIZE_PYTHONS", "").split()
TIMEOUT = float(os.environ.get("FINALIZE_TIMEOUT", "30"))
CLEAN_ENV = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD" and not k.startswith("GILGATE_")}


def sh(*a, **kw):
    return subprocess.run(a, capture_output=True, text=True, **kw)


def discover():
    """[(name, version tuple, run prefix, env, cflags)], [absent lines]"""
    found, absent = [], []
    r = sh("pyenv", "root") if any(os.access(Path(d) / "pyenv", os.X_OK) for d in os.environ.get("PATH", "").split(":")) else None
    root = Path(r.stdout.strip()) if r is not None and r.returncode == 0 else Path.home() / ".pyenv"
    for d in sorted((root / "versions").glob("3.*")):
        exe, cfg = d / "bin/python3", d / "bin/python3-config"
        if not exe.exists() or not cfg.exists():
            continue
        v = tuple(int(x) for x in d.name.split(".")[:3] if x.isdigit())
        if v[:2] < (3, 8):
            continue
        found.append((f"pyenv-{d.name}", v, [str(exe)], {}, sh(str(cfg), "--includes").stdout.split()))
    if Path("/usr/bin/python3.11").exists() and Path("/usr/include/python3.11/Python.h").exists():
        v = sh("/usr/bin/python3.11", "-c", "import platform;print(platform.python_version())").stdout.strip()
        found.append((f"debian-{v}", tuple(int(x) for x in v.split(".")), ["/usr/bin/python3.11"], {},
                      sh("/usr/bin/python3.11-config", "--includes").stdout.split()))
    else:
        absent.append("debian-3.11 (/usr/bin/python3.11 with headers): absent")
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "gilgate/debian-python"
    for v in ["3.14", "3.15"]:
        if not (cache / v / "tree").is_dir():
            absent.append(f"debian-unstable-{v}: absent (no tree in {cache}; scripts/debian-python.sh {v} fetches it)")
            continue
        e = sh("bash", str(ROOT / "scripts/debian-python.sh"), "--env", v)
        kv = dict(l.split("=", 1) for l in e.stdout.splitlines() if "=" in l)
        kv = {k: x.strip("'\"") for k, x in kv.items()}
        if e.returncode != 0 or "PY_EXE" not in kv:
            absent.append(f"debian-unstable-{v}: absent (scripts/debian-python.sh --env {v} failed)")
            continue
        ver = kv["PY_VERSION"]
        found.append((f"debian-unstable-{ver}", tuple(int(x) for x in ver.split(".")),
                      [kv["PY_LOADER"], "--library-path", kv["PY_LIBRARY_PATH"], kv["PY_EXE"]],
                      {"PYTHONHOME": kv["PY_HOME"]}, kv["PY_CFLAGS"].split()))
    found.sort(key=lambda p: (p[1], p[0].startswith("debian")))
    if ONLY:
        keep = [p for p in found if any(w in p[0] for w in ONLY)]
        absent += [f"{p[0]}: skipped (FINALIZE_PYTHONS)" for p in found if p not in keep]
        found = keep
    return found, absent


def build(found):
    OUT.mkdir(parents=True, exist_ok=True)
    rude = OUT / "libexit_rude.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-pthread", str(ROOT / "benches/exit_rude.c"), "-o", str(rude)], check=True)
    for name, _, _, _, cflags in found:
        d = OUT / name
        d.mkdir(exist_ok=True)
        for src, mod in [("c_tests/idioms_ext.c", "gg_idioms"), ("benches/exit_daemon_ext.c", "gg_nap")]:
            subprocess.run(["gcc", "-shared", "-fPIC", "-O2", *cflags, str(ROOT / src), "-o", str(d / f"{mod}.so")], check=True)
    return rude


def command(py, program, rude):
    prefix, env = py[2], dict(CLEAN_ENV, **py[3])
    env["PYTHONPATH"] = str(OUT / py[0])
    if program == "polite":
        return prefix + [str(ROOT / "c_tests/idioms_main.py"), "pybind11", "atexit-before"], env
    if program == "rude":
        return prefix + [str(ROOT / "benches/exit_rude.py"), str(rude), "4"], env
    return prefix + [str(ROOT / "benches/exit_daemon.py"), "8"], env


def status(rc):
    if rc is None:
        return "timeout"
    if rc < 0:
        try:
            return signal.Signals(-rc).name
        except ValueError:
            return f"signal {-rc}"
    return "exit 0" if rc == 0 else f"exit {rc}"


def once(cmd, env, gated, stats=False):
    env = dict(env)
    if gated:
        env["LD_PRELOAD"] = LIB
    if stats:
        env["GILGATE_SHOW_STATS"] = "1"
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        _, err = p.communicate(timeout=TIMEOUT)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        _, err = p.communicate()
        rc = None
    ms = (time.perf_counter() - t0) * 1000
    err = err.decode(errors="replace")
    drain_us = drain_to = None
    for line in err.splitlines():
        if "drain_max_us=" in line:
            for w in line.split():
                if w.startswith("drain_max_us="):
                    drain_us = int(w.split("=")[1])
                if w.startswith("drain_timeouts="):
                    drain_to = int(w.split("=")[1])
    return ms, status(rc), drain_us, drain_to, err


def q(xs):
    xs = sorted(xs)
    p = lambda r: xs[min(len(xs) - 1, int(r * (len(xs) - 1) + 0.5))]
    return statistics.median(xs), p(0.1), p(0.9)


def counts(sts):
    c = {}
    for s in sts:
        c[s] = c.get(s, 0) + 1
    return ", ".join(f"{k} {v}" for k, v in sorted(c.items(), key=lambda kv: (kv[0] != "exit 0", kv[0])))


def main():
    found, absent = discover()
    rude = build(found)
    print(f"# benches/finalize.py: {RUNS} interleaved runs, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"gilgate {LIB}, load average {os.getloadavg()[0]:.1f}", flush=True)
    for a in absent:
        print(f"# {a}")
    results = {}  # (py, program) -> {mode: [(ms, status, drain_us, drain_to)]}
    for py in found:
        d = OUT / py[0]
        cmds = {prog: command(py, prog, rude) for prog in PROGRAMS}
        for prog in PROGRAMS:
            results[(py[0], prog)] = {"raw": [], "gilgate": []}
        for i in range(RUNS):
            for prog in PROGRAMS:
                for mode in (["raw", "gilgate"] if i % 2 == 0 else ["gilgate", "raw"]):
                    cmd, env = cmds[prog]
                    r = once(cmd, env, mode == "gilgate")
                    results[(py[0], prog)][mode].append(r[:4])
                    with open(d / f"{prog}-{mode}.tsv", "a" if i else "w") as f:
                        f.write(f"{r[0]:.3f}\t{r[1]}\t{r[2]}\t{r[3]}\n")
                    if r[1] != "exit 0" or i == RUNS - 1:
                        (d / f"{prog}-{mode}.stderr-{r[1].replace(' ', '')}").write_text(r[4][-4000:])
        # The drain column: untimed runs with the stats line.
        for prog in PROGRAMS:
            results[(py[0], prog)]["stats"] = []
        for i in range(max(3, RUNS // 4)):
            for prog in PROGRAMS:
                cmd, env = cmds[prog]
                r = once(cmd, env, True, stats=True)
                results[(py[0], prog)]["stats"].append(r[:4])
                with open(d / f"{prog}-stats.tsv", "a" if i else "w") as f:
                    f.write(f"{r[0]:.3f}\t{r[1]}\t{r[2]}\t{r[3]}\n")
        print(f"# {py[0]}: done", file=sys.stderr, flush=True)
    for prog in PROGRAMS:
        print(f"\n### {prog}\n")
        print("| CPython | runs | raw: ms, median [p10–p90] | raw exits | through gilgate | gilgate exits | difference of medians | paired difference, median [p10–p90] | drain µs, median [max] (stats runs) | drain timeouts |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for py in found:
            r = results[(py[0], prog)]
            a, b = q([x[0] for x in r["raw"]]), q([x[0] for x in r["gilgate"]])
            # Run i raw and run i through gilgate are adjacent: their difference cancels slow drift of the load.
            pd = q([g[0] - w[0] for g, w in zip(r["gilgate"], r["raw"])])
            dr = [x[2] for x in r["stats"] if x[2] is not None]
            to = sum(x[3] or 0 for x in r["stats"])
            print(f"| {py[0]} | {RUNS} | {a[0]:.1f} [{a[1]:.1f}–{a[2]:.1f}] | {counts(x[1] for x in r['raw'])} | "
                  f"{b[0]:.1f} [{b[1]:.1f}–{b[2]:.1f}] | {counts(x[1] for x in r['gilgate'])} | {b[0] - a[0]:+.1f} | "
                  f"{pd[0]:+.1f} [{pd[1]:+.1f}–{pd[2]:+.1f}] | "
                  f"{(str(statistics.median(dr)) + ' [' + str(max(dr)) + ']') if dr else 'n/a'} | {to if dr else 'n/a'} |")
    # The targets of issue 20.
    print()
    ref = [py for py in found if py[1][:2] == (3, 14)]
    if "rude" in PROGRAMS and ref:
        raw314 = q([x[0] for x in results[(ref[0][0], "rude")]["raw"]])[0]
        bad = [(py[0], q([x[0] for x in results[(py[0], "rude")]["gilgate"]])[0]) for py in found]
        over = [(n, m) for n, m in bad if m > raw314 + 200]
        print(f"target rude: gilgate median <= raw {ref[0][0]} median ({raw314:.1f} ms) + 200 ms: "
              + ("met on every CPython" if not over else "NOT met: " + ", ".join(f"{n} {m:.1f} ms" for n, m in over)))
    elif "rude" in PROGRAMS:
        print("target rude: no CPython 3.14 here (absent): not evaluated")
    if "polite" in PROGRAMS:
        over, over_p = [], []
        for py in found:
            r = results[(py[0], "polite")]
            diff = q([x[0] for x in r["gilgate"]])[0] - q([x[0] for x in r["raw"]])[0]
            pdiff = q([g[0] - w[0] for g, w in zip(r["gilgate"], r["raw"])])[0]
            if diff > 10:
                over.append(f"{py[0]} {diff:+.1f} ms")
            if pdiff > 10:
                over_p.append(f"{py[0]} {pdiff:+.1f} ms")
        print("target polite: gilgate median <= raw median + 10 ms: " + ("met on every CPython" if not over else "NOT met: " + ", ".join(over)))
        print("target polite, paired: median of (gilgate run i - raw run i) <= 10 ms: "
              + ("met on every CPython" if not over_p else "NOT met: " + ", ".join(over_p)))


main()
