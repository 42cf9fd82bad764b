"""Stopping a run: SIGINT/SIGTERM end it cleanly, and no worker process outlives it.

The main process of `repro run`, `chief` and `worker` turns the first SIGINT or SIGTERM into
`Interrupted` (a KeyboardInterrupt) raised where it is: `run.execute` leaves its worker pool,
which terminates every worker (the round in flight is discarded; each finished trial's record
and the point's last race checkpoint are on disk, written atomically), and `__main__` prints
the command that resumes and exits 128 + the signal (130 for SIGINT, 143 for SIGTERM). A
second signal while that unwinds exits at once.

A worker process dies with its parent whatever kills the parent, SIGKILL included
(`die_with_parent`): on Linux the kernel sends it SIGKILL when the parent exits
(prctl PR_SET_PDEATHSIG); everywhere a thread also polls the parent's pid once a second.
Workers ignore SIGINT: a Ctrl-C reaches the whole process group, and the parent decides.
"""
import ctypes
import os
import signal
import sys
import threading
import time

SIGNALS = (signal.SIGINT, signal.SIGTERM)
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
PARENT_POLL_S = 1.0


class Interrupted(KeyboardInterrupt):
    """The run got SIGINT or SIGTERM (`signum`)."""

    def __init__(self, signum):
        self.signum = int(signum)
        super().__init__(signal.Signals(self.signum).name)

    @property
    def exit_code(self):
        return 128 + self.signum


def _handler(signum, frame):
    for s in SIGNALS:  # the next one does not wait for the clean-up
        signal.signal(s, _force_exit)
    raise Interrupted(signum)


def _force_exit(signum, frame):
    os._exit(128 + signum)  # workers follow: they die with their parent


def install():
    """In the main thread of the main process: SIGINT and SIGTERM raise `Interrupted`.
    Returns the handlers they had, for `restore` (none outside the main thread, where Python
    cannot set handlers: there the signals keep theirs)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {s: signal.signal(s, _handler) for s in SIGNALS}


def restore(handlers):
    for s, h in handlers.items():
        signal.signal(s, h)


def die_with_parent(parent_pid, poll_s=PARENT_POLL_S):
    """In a worker process: exit when process `parent_pid` (its parent) ends, however it ends."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the thread below still watches
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent_pid, poll_s), daemon=True,
                     name="repro-watch-parent").start()


def _watch_parent(parent_pid, poll_s):
    while True:
        time.sleep(poll_s)
        if os.getppid() != parent_pid:  # re-parented: the parent is gone
            os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))
