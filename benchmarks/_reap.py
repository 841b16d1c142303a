"""Run a command and report its exit status, CPU time and peak RSS, measured from here.

Usage: python -I -S _reap.py RESULT.json COMMAND [ARGS...]

Why a separate process: Linux keeps a process's peak RSS across ``exec`` (ru_maxrss), and a
child forked (or vforked) from the benchmark, whose simulators hold hundreds of MB, would
report that; this small process forks the command instead, so its figure is its own.
"""

import json
import os
import sys
import time


def main() -> int:
    result, argv = sys.argv[1], sys.argv[2:]
    pid = os.fork()
    if pid == 0:  # the command
        try:
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    ended = time.monotonic()
    with open(result, "w") as out:
        json.dump(
            {
                "code": os.waitstatus_to_exitcode(status),
                "ended": ended,
                "cpu": usage.ru_utime + usage.ru_stime,
                "max_rss_kb": usage.ru_maxrss,
            },
            out,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
