"""How often the garbage collector runs while a landing is verified."""

from __future__ import annotations

import gc
from collections.abc import Callable

YOUNG_THRESHOLD = 30_000
"""Container objects allocated (net of those freed) between two young collections; CPython's
default is 700. A landing session makes few reference cycles and many objects that live to its
end (modules, a thousand checks, the watched Kubernetes objects), and with the default the
collector walked them again and again: at 1000 services, 507 young, 46 middle and 4 full
collections took 0.26-0.30 s of the session's 2.8 CPU seconds. With 30 000 they take 0.02-0.1 s
and the peak memory stays within 1 MB (``python -m benchmarks``, P3 and P6). mypy raises it the
same way for its builds (python/mypy mypy/build.py: "Run gc less frequently, as otherwise we can
spend a large fraction of cpu in gc", ``gc.set_threshold(200 * 1000, 30, 30)``)."""


def fewer_collections() -> Callable[[], None]:
    """Raise the young generation's threshold to :data:`YOUNG_THRESHOLD` (never lower it, and
    leave a disabled collector, threshold 0, alone); returns what puts the thresholds back. It
    puts them back only if it changed them and they are still as it set them: a threshold that
    a check, a plugin or another session set meanwhile is theirs."""
    before = gc.get_threshold()
    if not 0 < before[0] < YOUNG_THRESHOLD:
        return lambda: None
    raised = (YOUNG_THRESHOLD, *before[1:])
    gc.set_threshold(*raised)

    def restore() -> None:
        if gc.get_threshold() == raised:
            gc.set_threshold(*before)

    return restore
