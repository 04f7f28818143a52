# Runs c_tests/idioms_ext.c's threads in one of the ways programs stop them.
#   python idioms_main.py MODE VARIANT [THREADS]
#   VARIANT: join          stop() before the end of the script
#            atexit-before atexit.register(stop) before the threads first ran
#            atexit-after  atexit.register(stop) after they ran
#            rude          never stopped: they keep calling in while Python finalizes
#            fork          (join; mode "owned") plus a child forked while the threads wait inside
#                          their regions (on the host mutex, GIL released), which exits through
#                          normal finalization: the parent's threads do not exist there
import atexit, os, sys, time
import gg_idioms

mode, variant = sys.argv[1], sys.argv[2]
n = int(sys.argv[3]) if len(sys.argv) > 3 else 4
count = [0]


def inner():
    count[0] += 1


def cb():
    if mode == "foreign":
        gg_idioms.blocking_call(inner)
    else:
        count[0] += 1
        time.sleep(0)


if variant == "atexit-before":
    atexit.register(gg_idioms.stop)
gg_idioms.start(n, cb, mode)
deadline = time.time() + 10
while gg_idioms.rounds() < 50 * n and time.time() < deadline:
    time.sleep(0.01)
if variant == "atexit-after":
    atexit.register(gg_idioms.stop)
if variant == "fork":
    gg_idioms.hold()
    time.sleep(0.05)  # the workers reach the mutex, inside their regions
    pid = os.fork()
    if pid == 0:
        sys.exit(0)  # finalizes in the child
    gg_idioms.unhold()
    _, status = os.waitpid(pid, 0)
    assert status == 0, status
if variant in ("join", "fork"):
    gg_idioms.stop()
print("rounds", gg_idioms.rounds(), flush=True)
