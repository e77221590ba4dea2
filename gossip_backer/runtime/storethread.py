"""The store's own worker thread: SQLite writes, commits and large reads leave the trio loop.

Theory of operation. One dedicated thread takes jobs from one FIFO queue and runs them one at a
time, so the store sees its calls in exactly the order the loop made them (one writer, no two
calls at once) while the loop goes on serving sockets and timers. Three ways in:

- `submit(fn, *args)`: write-behind. The loop does not wait; the write lands after every job
  submitted before it. For what a crash may lose without harm: updates received from peers
  (asked for again after a restart, since the digest we advertise is the stored one), revision
  rows, config notes. A failure is logged and kept in `error`; later jobs still run.
- `await call(fn, *args)`: the task waits for the result (or the exception), the loop does not.
  For large reads (the update log, the local index) and batches the caller must know were
  written (the index saver). Not cancellable once queued: the job runs, like
  `trio.to_thread.run_sync` without abandon_on_cancel.
- `wait(fn, *args)`: the loop itself waits, behind what is queued. Only for what must be durable
  before anything else happens: our own signed updates (a peer must never see an update of ours
  that a crash could take back and that we would then sign again, differently, under the same
  number) and invite claims. The queue is short when we make changes of our own.

`drain()` waits until everything submitted is written (a clean stop); `close()` ends the thread.
This module decides nothing: callers choose which way each call goes. The store package stays
free of trio; only this module knows both.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

import trio

log = logging.getLogger(__name__)

_STOP = object()


class StoreThread:
    """One worker thread running store calls in the order they were made."""

    def __init__(self, name: str = "backer-store") -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._pending = 0
        self._idle = threading.Condition()
        self.error: str | None = None  # the last failure of a write-behind job
        self._thread.start()

    # -- the three ways in -------------------------------------------------------------------
    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run `fn(*args)` after everything queued; do not wait."""
        self._put(fn, args, self._logged)

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run `fn(*args)` after everything queued; this task waits, the loop does not."""
        token = trio.lowlevel.current_trio_token()
        done, box = trio.Event(), []

        def finish(result: _Result) -> None:
            box.append(result)
            token.run_sync_soon(done.set)
        self._put(fn, args, finish)
        with trio.CancelScope(shield=True):  # a queued job runs anyway: wait for its end
            await done.wait()
        return box[0].unwrap()

    def wait(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run `fn(*args)` after everything queued and block the caller until it is done."""
        if threading.current_thread() is self._thread:
            return fn(*args)
        done = threading.Event()
        box: list[_Result] = []

        def finish(result: _Result) -> None:
            box.append(result)
            done.set()
        self._put(fn, args, finish)
        done.wait()
        return box[0].unwrap()

    # -- life --------------------------------------------------------------------------------
    def drain(self) -> None:
        """Block until every job queued so far has run."""
        with self._idle:
            self._idle.wait_for(lambda: self._pending == 0)

    def close(self) -> None:
        """Run what is queued, then end the thread."""
        self._jobs.put(_STOP)
        self._thread.join()

    # -- inside ------------------------------------------------------------------------------
    def _put(self, fn: Callable[..., Any], args: tuple, then: Callable[["_Result"], Any]) -> None:
        if not self._thread.is_alive():
            raise RuntimeError("the store thread is closed")
        with self._idle:
            self._pending += 1
        self._jobs.put((fn, args, then))

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is _STOP:
                return
            self._run(*job)
            del job  # not kept while the thread waits for the next job (see `_run`)
            with self._idle:
                self._pending -= 1
                self._idle.notify_all()

    @staticmethod
    def _run(fn: Callable[..., Any], args: tuple, then: Callable[["_Result"], Any]) -> None:
        """One job, in a function of its own: nothing of it (its arguments, its result) stays
        alive once it is done. Kept as loop variables, the last job's stayed until the next
        came: on an idle node, the index saver's batch of a first scan's 100,000 rows (a ~4 MB
        table) for good."""
        result = _Result.capture(fn, args)
        try:
            then(result)
        except BaseException:  # the loop is gone (a call cancelled with the run): the
            log.exception("store result could not be delivered")  # write itself is done

    def _logged(self, result: "_Result") -> None:
        if result.error is not None:
            self.error = str(result.error)
            log.warning("a store write failed: %s", result.error)


class _Result:
    """What one job gave: a value, or the exception it raised."""

    __slots__ = ("value", "error")

    def __init__(self, value: Any = None, error: BaseException | None = None) -> None:
        self.value = value
        self.error = error

    @classmethod
    def capture(cls, fn: Callable[..., Any], args: tuple) -> "_Result":
        try:
            return cls(fn(*args))
        except BaseException as exc:  # handed to whoever waits for it
            return cls(error=exc)

    def unwrap(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value
