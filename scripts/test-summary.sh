#!/usr/bin/env bash
# test-summary.sh RESULTS.tsv: the closing summary of ./test.sh. Each line of RESULTS.tsv is
#   suite<TAB>cpython<TAB>case<TAB>outcome      (outcome: pass | fail | absent)
# written by the harness suites (harness/src/lib.rs `record`, env GILGATE_RESULTS), by
# c_tests/valgrind.sh, and by test.sh for the libtest suites (cpython "-": no CPython involved).
# Prints, per CPython, how many test cases ran, passed and failed (and in which suites), then
# the CPythons that were absent (never counted as passed), then the failed cases.
set -u
f=${1:?usage: test-summary.sh RESULTS.tsv}
echo "== summary ($f)"
if [ ! -s "$f" ]; then
  echo "no result lines were written (every suite failed to start?)"
  exit 0
fi
awk -F'\t' '
  $4 == "pass" || $4 == "fail" {
    k = $2; ran[k]++; if ($4 == "pass") ok[k]++; else bad[k]++
    if (!((k, $1) in seen)) { seen[k, $1] = 1; suites[k] = suites[k] (suites[k] == "" ? "" : ",") $1 }
    if ($4 == "fail") fails[++nf] = $1 ": " $3
  }
  $4 == "absent" { if (!($2 in abs)) { abs[$2] = $1; order[++na] = $2 } else if (index(abs[$2], $1) == 0) abs[$2] = abs[$2] "," $1 }
  END {
    printf "%-28s %6s %6s %6s  %s\n", "CPython", "ran", "passed", "failed", "suites"
    n = 0; for (k in ran) keys[++n] = k
    # sort: "-" (no CPython) first, then by name
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (keys[j] < keys[i]) { t = keys[i]; keys[i] = keys[j]; keys[j] = t }
    tr = tp = tf = 0
    for (i = 1; i <= n; i++) {
      k = keys[i]; name = (k == "-" ? "(no CPython: unit/model tests)" : k)
      printf "%-28s %6d %6d %6d  %s\n", name, ran[k], ok[k] + 0, bad[k] + 0, suites[k]
      tr += ran[k]; tp += ok[k]; tf += bad[k]
    }
    printf "%-28s %6d %6d %6d\n", "total", tr, tp, tf
    if (na) {
      print "absent or not run (not counted as passed):"
      for (i = 1; i <= na; i++) if (!(order[i] in ran)) printf "  %-40s (%s)\n", order[i], abs[order[i]]
      for (i = 1; i <= na; i++) if (order[i] in ran) printf "  %-40s not run in: %s\n", order[i], abs[order[i]]
    }
    if (nf) { print "failed cases:"; for (i = 1; i <= nf && i <= 50; i++) print "  " fails[i]; if (nf > 50) print "  ... " nf - 50 " more" }
  }' "$f"
