"""Command-line values checked against their limits (specs/README.md, "Limits") before anything
is read, trained or written: each bad value is a UsageError that names `command line`, the
option and a fix (one line, exit status 2). `check_args` also turns bench's --batch-sizes and
--sparsities into lists.
"""
import os
import pathlib

from .errors import UsageError

MAX_WORKERS = 256     # processes, each with its own TensorFlow (~0.5 GiB): 256 fill a large host
MAX_THREADS = 256     # TensorFlow threads per worker
MAX_N_BOOT = 100_000  # bootstrap replicates (each refits every sparsity; default evidence.N_BOOT)
N_BOOT_HELP = "bootstrap replicates per fit (default: repro.evidence.N_BOOT, what the claims use)"
NAME_MAX, PATH_MAX = 255, 4096  # the longest file name and path Linux accepts
COMMAND_LINE = "command line"   # the "file" a UsageError about an option names


def _option(key, problem, fix):
    raise UsageError(COMMAND_LINE, key, problem, fix)


def _in_range(args, attr, lo, hi, fix):
    """Option `attr` (if given) within lo..hi (`hi` None: no upper limit)."""
    value = getattr(args, attr, None)
    key = "--" + attr.replace("_", "-")
    if value is not None and not (lo <= value and (hi is None or value <= hi)):
        shown = str(value) if abs(value) < 10 ** 30 else f"an integer of {value.bit_length()} bits"
        _option(key, f"must be >= {lo}, got {shown}" if hi is None else
                f"must lie in {lo:,}..{hi:,}, got {shown}", fix)


def _folder(args, attr, must_be_dir=True):
    """A folder (or file) option: a path Linux can create, not an existing thing of the wrong kind."""
    value = getattr(args, attr, None)
    if value is None:
        return
    key = "--" + attr.replace("_", "-")
    what = "folder" if must_be_dir else "file"
    if not value:
        _option(key, "is empty", f"name a {what}")
    encoded = os.fsencode(value)
    longest = max(len(part) for part in encoded.split(b"/"))
    if len(encoded) > PATH_MAX or longest > NAME_MAX:
        _option(key, f"path too long ({len(encoded):,} bytes, longest name {longest:,}; Linux "
                f"accepts {PATH_MAX:,} and {NAME_MAX})", f"use a shorter {what} path")
    path = pathlib.Path(value)
    if must_be_dir and path.exists() and not path.is_dir():
        _option(key, f"{value} is a file, not writable as a folder",
                f"pass {key} DIR with a folder you can write to")
    if not must_be_dir and path.is_dir():
        _option(key, f"{value} is a folder", "pass a file name")


def check_args(args):
    """Command-line values within their limits; UsageError (one line, exit 2) otherwise."""
    import math
    from . import spec as spec_mod
    _in_range(args, "workers", 1, MAX_WORKERS, f"use 1 to {MAX_WORKERS} worker processes")
    _in_range(args, "threads", 1, MAX_THREADS, f"use 1 to {MAX_THREADS} threads")
    _in_range(args, "port", 1, 65535, "use a TCP port in 1..65535, e.g. 8000")
    _in_range(args, "n_boot", 1, MAX_N_BOOT, "e.g. --n-boot 500")
    _in_range(args, "status", 0, 255, "pass an exit status, e.g. --status $?")
    _in_range(args, "seconds", 0, None, "pass the wall time in seconds, e.g. 3600")
    _in_range(args, "max_device_batch", 1, None, "e.g. --max-device-batch 8192")
    _in_range(args, "race_group", 1, None, "e.g. --race-group 8")
    every = getattr(args, "checkpoint_every", None)
    if every is not None and not (math.isfinite(every) and every >= 0):
        _option("--checkpoint-every", f"must be a number of seconds >= 0, got {every}",
                "e.g. --checkpoint-every 300 (0: after every evaluation round)")
    _in_range(args, "devices", 1, 1_000_000, "e.g. --devices 8")
    if args.command == "bench":
        _in_range(args, "trials", 1, spec_mod.MAX_TRIALS, "e.g. --trials 2")
    budget = getattr(args, "budget", None)
    if budget is not None and not (math.isfinite(budget) and 0.0 < budget <= 24 * 365):
        _option("--budget", f"must be hours in (0, 8760], got {budget}", "e.g. --budget 2")
    goal = getattr(args, "goal", None)
    if goal is not None and not (math.isfinite(goal) and 0.0 < goal < 1.0):
        _option("--goal", f"must lie in the open interval (0, 1), got {goal}",
                "e.g. --goal 0.14 for 14 % validation error")
    tuner_id = getattr(args, "tuner_id", None)
    if tuner_id is not None and not spec_mod.is_name(tuner_id):
        _option("--tuner-id", f"'{tuner_id[:40]}{'...' if len(tuner_id) > 40 else ''}' is not a "
                f"file name of at most {spec_mod.MAX_NAME} characters (it names the worker's folder)",
                "use letters, digits, '_', '-', '.', starting with a letter or digit")
    for attr in ("results", "figures"):
        _folder(args, attr)
    _folder(args, "junit", must_be_dir=False)
    for attr, conv in (("batch_sizes", int), ("sparsities", float)):
        text = getattr(args, attr, None) if args.command == "bench" else None
        if text:
            try:
                setattr(args, attr, [conv(x) for x in text.split(",")])
            except ValueError:
                _option("--" + attr.replace("_", "-"), f"'{text[:40]}' is not a comma-separated "
                        f"list of {'integers' if conv is int else 'numbers'}", "e.g. 16,256")
