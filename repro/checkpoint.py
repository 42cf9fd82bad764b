"""Race checkpoints: a killed race resumes from its last saved round, not from step 0.

While a study point races (run.run_point), every `checkpoint_every` seconds of racing (after the
round that crosses it; 0: every round) the live trials' saved states (engine.TrialRun.snapshot:
weights, masks, optimiser velocities, schedule variables, step, validation order and margins)
and their progress (steps trained, curve so far, examples evaluated, wall time) are written to
`results/checkpoints/<point>.npz` atomically (repro.atomic), with what the race was
(`meta`: each trial's run id, goal, exit goal and extent, the race's goal, capping and early
exit, its best so far and the evaluation step every live trial has reached). A resumed run
whose race is the same restores those trials and races on from the next evaluation step: the
same bits as a race never killed. The file is removed once the trials' records are written.

Disk: one file per point being raced (by this run: at most --workers at once), holding one
saved state per live trial (engine.state_bytes(): weights, masks and optimiser velocities, 3 x
the weight count x 4 bytes, plus the validation order and margins, 8 bytes per validation
example): about 0.8 MB per trial for the Simple CNN on MNIST (62,346 weights, 6,000 validation
examples), so T live trials take T x 0.8 MB; never more than run.RACE_MEMORY (1 GiB), the
saved states a race group may hold. Rewritten in place; removed with the race.
"""
import io
import json
import pathlib

import numpy as np

from .atomic import atomic_write
from .errors import UsageError

CHECKPOINT_EVERY = 300.0  # default seconds of racing between two checkpoints of a point's race


class RaceCheckpoint:
    """The checkpoint file of one study point (`name`, as its lease) in `results_dir`."""

    def __init__(self, results_dir, name):
        self.path = pathlib.Path(results_dir) / "checkpoints" / f"{name}.npz"

    def save(self, meta, runs):
        """Write `meta` (JSON-able) and the snapshot of every run in `runs` ({trial: TrialRun})."""
        arrays, progress = {}, {}
        for i, run in runs.items():
            progress[str(i)], state = run.snapshot()
            for j, a in enumerate(state):
                arrays[f"t{i}_{j}"] = a
        blob = json.dumps({**meta, "progress": progress})
        buf = io.BytesIO()
        np.savez(buf, meta=np.frombuffer(blob.encode(), np.uint8), **arrays)
        atomic_write(self.path, buf.getvalue())

    def load(self):
        """(meta, {trial: (progress, state)}), or None when there is no checkpoint."""
        if not self.path.exists():
            return None
        try:
            with np.load(self.path) as z:
                meta = json.loads(z["meta"].tobytes().decode())
                runs = {}
                for key, progress in meta.pop("progress").items():
                    i = int(key)
                    n = sum(1 for f in z.files if f.startswith(f"t{i}_"))
                    runs[i] = (progress, [z[f"t{i}_{j}"] for j in range(n)])
        except (OSError, ValueError, KeyError, EOFError) as e:
            raise UsageError(self.path, "meta", f"unreadable race checkpoint ({type(e).__name__}: "
                             f"{e})", "delete the file; the point races from its start") from None
        return meta, runs

    def remove(self):
        self.path.unlink(missing_ok=True)
