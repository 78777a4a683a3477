"""SIGINT and SIGTERM as a clean stop: the first asks the running stage to stop at its next
checkpoint (after the batch in flight committed); a second one, or the stop timeout running
out, cuts the run short at once. The run is recorded `interrupted` either way."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from connector.control import clear_stop, request_stop, stop_requested
from connector.errors import StopRequested

__all__ = ["stop_on_signals"]

log = logging.getLogger("connector.runtime")

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_active = False


@contextmanager
def stop_on_signals(timeout: float) -> Iterator[None]:
    """Turn SIGINT/SIGTERM into stop requests for the duration (main thread only; nested uses
    keep the outer handlers). `timeout` seconds after the first signal the run is cut short,
    and `timeout + 2` seconds after it the process exits, whatever it is doing."""
    global _active
    if _active or threading.current_thread() is not threading.main_thread():
        yield
        return
    timers: list[threading.Timer] = []

    def cut_short(signum: int) -> None:
        log.error("the batch in flight did not finish within %.0f s of the stop request: "
                  "cutting the run short", timeout)
        os.kill(os.getpid(), signum)  # a real signal wakes a blocking call, unlike a flag

    def handler(signum: int, _frame: FrameType | None) -> None:
        if stop_requested() is not None:
            raise StopRequested("stopped on request before the batch in flight finished",
                                signum=stop_requested() or signum)
        request_stop(signum)
        log.warning("%s received: finishing the batch in flight, then stopping",
                    signal.Signals(signum).name)
        for delay, action in ((timeout, lambda: cut_short(signum)),
                              (timeout + 2, lambda: os._exit(128 + signum))):
            timer = threading.Timer(delay, action)
            timer.daemon = True
            timer.start()
            timers.append(timer)

    previous = {sig: signal.getsignal(sig) for sig in _SIGNALS}
    clear_stop()
    _active = True
    for sig in _SIGNALS:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for timer in timers:
            timer.cancel()
        for sig, old in previous.items():
            signal.signal(sig, old)
        _active = False
        clear_stop()
