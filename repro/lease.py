"""Claims on study points: two runs on one results folder never race the same point at once.

A process racing a point holds its lease, `results/leases/<point>.lease`, made with
O_CREAT | O_EXCL (atomic on a local disk and on NFSv3+ and other shared filesystems, unlike
flock): the one run that creates it races the point; any other run on the folder races other
points first and then waits for the lease to go, and re-reads the records the holder stored
(run.claim_point). The file names its owner (host, pid, the pid's start time, a random token);
a thread touches it every `lease_s / 4` seconds (its heartbeat). A lease is stale, and may be
taken over, when its owner is on this host and no longer runs (a killed run's lease is taken
at once), or when it has not been touched for `lease_s` seconds (default 60, REPRO_LEASE_S:
an owner on another machine that died; the hosts' clocks must agree to within that). Taking
over renames the stale file aside first, so of two runs taking over at once only one wins.
"""
import json
import os
import pathlib
import secrets
import socket
import threading
import time

LEASE_S = float(os.environ.get("REPRO_LEASE_S", "60"))


def _start_time(pid):
    """The start time of process `pid` in clock ticks since boot (Linux), or None."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2:].split()[19])  # field 22


def _running(pid, start):
    """Whether process `pid` runs on this host and is the one that started at `start`."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, owned by someone else
    now = _start_time(pid)
    return start is None or now is None or now == start


class Lease:
    """The lease on one study point (`name`) in `results_dir`."""

    def __init__(self, results_dir, name, lease_s=LEASE_S):
        self.path = pathlib.Path(results_dir) / "leases" / f"{name}.lease"
        self.lease_s = lease_s
        self.owner = {"host": socket.gethostname(), "pid": os.getpid(),
                      "start": _start_time(os.getpid()), "token": secrets.token_hex(8)}
        self._stop, self._beat = threading.Event(), None
        self.lost = False  # another run took it over (we were silent for lease_s)

    # ---------------------------------------------------------------- reading a lease
    def holder(self, path=None):
        """The owner written in the lease file (None: no file; {} while it is being written)."""
        try:
            text = (path or self.path).read_text()
        except FileNotFoundError:
            return None
        try:
            return json.loads(text)
        except ValueError:
            return {}

    def stale(self, path=None):
        """Whether the lease at `path` (default: ours) may be taken over (False: no file)."""
        path = path or self.path
        try:
            age = time.time() - path.stat().st_mtime
        except FileNotFoundError:
            return False
        owner = self.holder(path)
        if owner and owner.get("host") == self.owner["host"] and isinstance(owner.get("pid"), int):
            return not _running(owner["pid"], owner.get("start"))
        return age > self.lease_s

    def mine(self):
        return self.holder() == self.owner

    # ---------------------------------------------------------------- taking and giving back
    def acquire(self):
        """Take the lease if nobody holds it (or its holder is stale); True when taken."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if not self.stale():
                    return False
                self._break_stale()
                continue
            try:
                os.write(fd, json.dumps(self.owner).encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            self.lost = False
            self._stop.clear()
            self._beat = threading.Thread(target=self._heartbeat, daemon=True,
                                          name=f"repro-lease-{self.path.stem}")
            self._beat.start()
            return True
        return False

    def _break_stale(self):
        """Move a stale lease aside; if it proves live after all (another run replaced it in
        between), put it back."""
        aside = self.path.with_name(f"{self.path.name}.{self.owner['token']}.stale")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return  # someone else moved it
        if not self.stale(aside):
            try:
                os.link(aside, self.path)
            except OSError:
                pass
        aside.unlink(missing_ok=True)

    def _heartbeat(self):
        while not self._stop.wait(self.lease_s / 4):
            if not self.mine():
                self.lost = True
                return
            try:
                os.utime(self.path)
            except FileNotFoundError:
                self.lost = True
                return

    def release(self):
        """Give the lease back (only if it is still ours)."""
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
            self._beat = None
        if self.mine():
            self.path.unlink(missing_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
