"""`kefu serve` under cProfile in every thread, for bench/webhook.py's cost by stage.

Why a wrapper: cProfile watches only the thread that enables it, and kefu works on the event
loop's thread and in the core's worker threads. `threading.setprofile` runs a hook as each
new thread starts; the hook gives that thread a profiler of its own, timed by the thread's
CPU clock (a thread blocked on a lock or a socket costs nothing). On exit (SIGINT, as the
benchmark stops the server) every thread's figures are merged into one pstats file.

    python bench/profiled_serve.py OUT.pstats serve --config kefu.toml --port 8080
"""

from __future__ import annotations

import cProfile
import pstats
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

_profiles: list[cProfile.Profile] = []
_profiles_lock = threading.Lock()


def _start_profiling(*_: Any) -> None:
    """Runs once as a thread starts (threading.setprofile): hand it its own profiler."""
    profile = cProfile.Profile(time.thread_time_ns, 1e-9)  # this thread's CPU time: waiting costs nothing
    with _profiles_lock:
        _profiles.append(profile)
    profile.enable()  # replaces this hook for the thread


def main() -> None:
    out, argv = Path(sys.argv[1]), sys.argv[2:]
    from bot.cli import main as kefu

    threading.setprofile(_start_profiling)
    _start_profiling()
    try:
        kefu.main(argv, standalone_mode=False)
    finally:
        threading.setprofile(None)  # type: ignore[arg-type]
        with _profiles_lock:
            profiles = list(_profiles)
        for profile in profiles:
            profile.create_stats()
        profiles = [p for p in profiles if p.stats]  # a thread that ran nothing has no figures
        stats = pstats.Stats(profiles[0])
        for profile in profiles[1:]:
            stats.add(profile)
        stats.dump_stats(str(out))


if __name__ == "__main__":
    main()
