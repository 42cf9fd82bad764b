"""`python -m repro.bench _side SIDE SELECTION ... OUT`: one side of the bench in this process
(repro.bench.sides.run_side); the bench starts each side so, to measure its process tree."""
import os
import sys

if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "_side":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from .sides import run_side
    run_side(sys.argv[2:])
