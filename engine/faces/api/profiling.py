"""An opt-in profile of a ``lapor serve`` worker process: ``LAPOR_API_PROFILE=/tmp/api.prof``
makes each worker profile every thread (the event loop and the threads routes run in) with
cProfile and write ``/tmp/api.prof.<pid>`` when it exits (stop it with SIGINT, as Ctrl-C
does: after SIGTERM uvicorn re-raises the signal and no exit handler runs); read it with
``pstats``. For finding
where a request's time goes (``bench/api_load.py``); it slows the server down, so never on in
production.
"""

from __future__ import annotations

import atexit
import cProfile
import os
import pstats
import sys
import threading
from types import FrameType
from typing import Any

__all__ = ["PROFILE_ENV", "profile_if_asked"]

PROFILE_ENV = "LAPOR_API_PROFILE"


def profile_if_asked() -> None:
    """Start profiling this process's threads when ``$LAPOR_API_PROFILE`` names a file."""
    target = os.environ.get(PROFILE_ENV)
    if not target:
        return
    made: list[cProfile.Profile] = []
    lock = threading.Lock()

    def start_here() -> None:
        profile = cProfile.Profile()
        with lock:
            made.append(profile)
        profile.enable()  # replaces this thread's hook below

    def first_call(_frame: FrameType, _event: str, _arg: Any) -> None:
        start_here()

    threading.setprofile(first_call)  # threads started from now on
    start_here()  # this one (the event loop's)

    def write() -> None:
        with lock:
            profiles = list(made)
        for profile in profiles:
            profile.disable()
        stats = pstats.Stats(*profiles)
        stats.dump_stats(f"{target}.{os.getpid()}")
        print(f"profile written to {target}.{os.getpid()}", file=sys.stderr)

    atexit.register(write)
