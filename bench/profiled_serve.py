"""`kefu serve` under cProfile in every thread, from a signal on: bench/webhook.py's cost by stage.

Why a wrapper: cProfile watches only the thread that enables it, and kefu works on the event
loop's thread and in the core's worker threads; and a profile of start-up (loading the
embedding model, embedding the demo phrasings) would drown the per-message costs. So every
thread gets a light hook (`threading.setprofile`, `sys.setprofile`) that does nothing until
SIGUSR1 arrives; the first call a thread makes after it gives that thread a profiler of its
own, timed by the thread's CPU clock (a thread blocked on a lock or a socket costs nothing).
On exit (SIGINT, as the benchmark stops the server) every thread's figures are merged into
one pstats file.

    python bench/profiled_serve.py OUT.pstats serve --config kefu.toml --port 8080
    kill -USR1 <pid>   # profile from here on
"""

from __future__ import annotations

import cProfile
import pstats
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

_profiles: list[cProfile.Profile] = []
_profiles_lock = threading.Lock()
_profiling = threading.Event()


def _waiting_hook(frame: FrameType, event: str, arg: Any) -> None:
    """Every thread's profile hook until SIGUSR1; then it hands the thread a profiler."""
    if not _profiling.is_set():
        return
    profile = cProfile.Profile(time.thread_time_ns, 1e-9)
    with _profiles_lock:
        _profiles.append(profile)
    profile.enable()  # replaces this hook for the thread


def _start(*_: Any) -> None:
    _profiling.set()


def main() -> None:
    out, argv = Path(sys.argv[1]), sys.argv[2:]
    from bot.cli import main as kefu

    signal.signal(signal.SIGUSR1, _start)
    threading.setprofile(_waiting_hook)
    sys.setprofile(_waiting_hook)
    try:
        kefu.main(argv, standalone_mode=False)
    finally:
        sys.setprofile(None)
        threading.setprofile(None)  # type: ignore[arg-type]
        with _profiles_lock:
            profiles = list(_profiles)
        for profile in profiles:
            profile.create_stats()
        profiles = [p for p in profiles if p.stats]  # a thread that ran nothing has no figures
        if profiles:
            stats = pstats.Stats(profiles[0])
            for profile in profiles[1:]:
                stats.add(profile)
            stats.dump_stats(str(out))


if __name__ == "__main__":
    main()
