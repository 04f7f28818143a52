"""Driver for the recipes' modules (docs/recipes.md, harness/tests/recipes.rs).

usage: python recipe_main.py MODULE MODULE_DIR RUN_S
Starts the module's own threads (2 + 2), waits until each made a call, lets them run RUN_S
seconds, then exits with them still calling in: they meet finalization. The module's C atexit
handler prints the RESULT line after Py_FinalizeEx and sets the exit status.
"""
import importlib
import sys
import time

sys.path.insert(0, sys.argv[2])
m = importlib.import_module(sys.argv[1])


def work():
    s = 0
    for i in range(50):
        s += i
    time.sleep(0)


m.start(2, work)
if m.wait_ready(4) < 4:
    print("workers did not start calling in", file=sys.stderr)
    sys.exit(4)
time.sleep(float(sys.argv[3]))
