"""Markdown tables from the raw outputs of benches/run.sh (target/bench/<cpython>/*.txt).

Usage: python3 benches/tables.py OUT_DIR NAME...
"""
import os
import statistics
import sys

out, names = sys.argv[1], sys.argv[2:]
BLOCKS = int(os.environ.get("PAIR_BLOCKS", "30"))


def read(name, f):
    p = os.path.join(out, name, f)
    return [l.split() for l in open(p)] if os.path.exists(p) else []


def pair_rows(name):
    r = {}
    for t in read(name, "pair.txt"):
        if t and t[0] in ("R", "D"):
            r[(t[1], t[2] if t[0] == "R" else "d_" + t[2])] = tuple(float(x) for x in t[3:6])
        elif t and t[0] == "F":
            r[(t[1], "f_" + t[2])] = tuple(float(x) for x in t[3:6]) + (int(t[6]),)
    return r


def dd(v):
    return "%+.1f [%+.1f…%+.1f]" % v[:3] if v else "–"


def ns(v):
    return "%.1f [%.1f–%.1f]" % v if v else "–"


def d(a, b):
    return "%+.1f" % (a[0] - b[0]) if a and b else "–"


meta = open(os.path.join(out, "meta.txt")).read().strip().splitlines()
for m in meta:
    print("_%s_  " % m)
print()

for sec, title, ops in (
    ("save_restore", "Single thread: one PyEval_SaveThread + PyEval_RestoreThread pair", "save+restore"),
    ("gilstate", "Single thread: one PyGILState_Ensure + PyGILState_Release pair (GIL free before)", "ensure+release"),
):
    print("### %s, ns/pair, median [p10–p90] over blocks\n" % title)
    print("| CPython | raw, no gilgate in process | raw | floor: bare shim | gilgate_* API | exported drop-in "
          "| API − raw | exported − raw | shim − raw |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n in names:
        r = pair_rows(n)
        raw, shim, gg, exp, nog = (r.get((sec, k)) for k in ("raw", "shim", "gg", "exp", "nogg_raw"))
        print("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            n, ns(nog), ns(raw), ns(shim), ns(gg), ns(exp), d(gg, raw), d(exp, raw), d(shim, raw)))
    print()
    print("Paired: per block, variant minus raw measured back to back in that block; median [p10…p90] "
          "over blocks, ns/pair (the verdict column uses the API's median).\n")
    print("| CPython | floor: shim − raw | API − raw | exported − raw | API ≤ raw+5 ns? "
          "| fast-regime blocks | shim − raw there | API − raw there | exported − raw there |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n in names:
        r = pair_rows(n)
        dshim, dgg, dexp, fshim, fgg, fexp = (r.get((sec, k)) for k in ("d_shim", "d_gg", "d_exp", "f_shim", "f_gg", "f_exp"))
        ok = ("yes" if dgg[0] <= 5 else "**no**") if dgg else "–"
        nf = "%d of %d" % (fgg[3], BLOCKS) if fgg else "–"
        print("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            n, dd(dshim), dd(dgg), dd(dexp), ok, nf, dd(fshim), dd(fgg), dd(fexp)))
    print()

print("### Contended: threads doing restore+save pairs on one GIL, pairs/s total, median [p10–p90] over rounds\n")
print("\"+hold\": each pair holds the GIL for PAIR_HOLD_NS (1 µs) of busy work.\n")
print("| CPython | threads | raw | gilgate_* API | ratio gilgate/raw (per round) | within 2%? | floor: shim/raw (per round) |")
print("|---|---|---|---|---|---|---|")
for n in names:
    r = pair_rows(n)
    for k in ("2", "4", "2_hold", "4_hold"):
        raw, gg, ratio, sr = (r.get(("contended" + k, x)) for x in ("raw", "gg", "ratio", "shim_ratio"))
        if not raw:
            continue
        ok = "yes" if ratio[0] >= 0.98 else "**no**"
        fl = "%.3f [%.3f–%.3f]" % sr if sr else "–"
        label = k.replace("_hold", " +hold")
        print("| %s | %s | %.0f [%.0f–%.0f] | %.0f [%.0f–%.0f] | %.3f [%.3f–%.3f] | %s | %s |" % ((n, label) + raw + gg + ratio + (ok, fl)))
print()

print("### Python workload (benches/workload.py), wall seconds, interleaved runs\n")
print("| CPython | runs | raw median | LD_PRELOAD=libgilgate.so median | ratio of medians | median of per-pair ratios | within 2%? |")
print("|---|---|---|---|---|---|---|")
for n in names:
    w = read(n, "workload.txt")
    raw = {int(t[2]): float(t[3]) for t in w if t[1] == "raw"}
    pre = {int(t[2]): float(t[3]) for t in w if t[1] == "pre"}
    if not raw:
        continue
    mr, mp = statistics.median(raw.values()), statistics.median(pre.values())
    pr = statistics.median(pre[i] / raw[i] for i in raw if i in pre)
    ok = "yes" if mp / mr <= 1.02 else "**no**"
    print("| %s | %d+%d | %.3f | %.3f | %.3f | %.3f | %s |" % (n, len(raw), len(pre), mr, mp, mp / mr, pr, ok))
print()

print("### Drain: gilgate_finalize with N host threads, median (max) over runs\n")
print("| CPython | threads | N | drain (drain_last_ns) | gilgate_finalize wall (drain + Py_FinalizeEx) "
      "| longest region in flight at close | drain ≤ 1 ms + that? |")
print("|---|---|---|---|---|---|---|")


def us(v):
    return "%.1f µs" % (v / 1e3) if v < 1e6 else "%.2f ms" % (v / 1e6)


for n in names:
    rows = [t for t in read(n, "drain.txt") if t[0] == "D"]
    for mode in ("idle", "busy"):
        for k in ("1", "8", "64"):
            rs = [t for t in rows if t[1] == mode and t[2] == k]
            if not rs:
                continue
            dr = [int(t[3]) for t in rs]
            wall = [int(t[4]) for t in rs]
            infl = [int(t[5]) for t in rs]
            ok = all(int(t[3]) <= 1_000_000 + int(t[5]) for t in rs)
            print("| %s | %s | %s | %s (%s) | %s (%s) | %s (%s) | %s |" % (
                n, mode, k, us(statistics.median(dr)), us(max(dr)), us(statistics.median(wall)), us(max(wall)),
                us(statistics.median(infl)), us(max(infl)), "yes" if ok else "**no** (%d/%d runs)" % (
                    sum(int(t[3]) <= 1_000_000 + int(t[5]) for t in rs), len(rs))))
print()

print("### Memory: 1000 concurrently live threads that each did one ensure/release, RSS growth, median over runs\n")
print("| CPython | through libpython (raw) | through gilgate | difference per thread | slots registered |")
print("|---|---|---|---|---|")
for n in names:
    rows = [t for t in read(n, "drain.txt") if t[0] == "M"]
    raw = [int(t[3]) for t in rows if t[1] == "rss-raw"]
    gg = [int(t[3]) for t in rows if t[1] == "rss-gg"]
    reg = [t[4] for t in rows if t[1] == "rss-gg"]
    if not raw or not gg:
        continue
    mr, mg = statistics.median(raw), statistics.median(gg)
    print("| %s | %.0f KiB | %.0f KiB | %.0f B | %s |" % (n, mr / 1024, mg / 1024, (mg - mr) / 1000, reg[0]))
print()
print("Slot storage by construction: `CachePadded<Slot>` = 128 B; a chunk of 32 slots plus its `next`"
      " pointer padded to 128 B = 4224 B (the first chunk is static), i.e. 132 B per slot; slots of exited"
      " threads are reused, never freed.")
