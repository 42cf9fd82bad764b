"""Step 4 of scripts/gpu-check: K* of Figure 1(b)'s reduced grid on the GPU beside the CPU's,
examples/s and peak device memory.

    python scripts/gpu_check_report.py GPU_RESULTS CPU_RESULTS WALL_SECONDS PEAK_MIB
"""
import pathlib
import sys

import numpy as np
import xarray as xr

from repro import analysis

NAME = "figure-1.reduced.nc"


def load(folder):
    path = pathlib.Path(folder) / NAME
    return xr.load_dataset(path) if path.exists() else None


def kstar_table(gpu, cpu, panel="b"):
    """Lines: K* per (sparsity, B) as 'GPU | CPU' ('-' where the goal was not reached or no CPU run)."""
    k_gpu = analysis.steps_to_result(gpu, panel)
    k_cpu = analysis.steps_to_result(cpu, panel) if cpu is not None and panel in list(cpu.panel.values) else None

    def cell(k, s, b):
        if k is None or b not in k.batch_size.values or s not in k.sparsity.values:
            return "-"
        v = float(k.sel(sparsity=s, batch_size=b))
        return "-" if not np.isfinite(v) else f"{v:.0f}"

    lines = [f"K* of Figure 1({panel}), reduced grid (GPU | CPU):",
             f"{'s':>5s} " + " ".join(f"{'B=' + str(int(b)):>15s}" for b in k_gpu.batch_size.values)]
    for s in k_gpu.sparsity.values:
        lines.append(f"{s:5g} " + " ".join(f"{cell(k_gpu, s, b) + ' | ' + cell(k_cpu, s, b):>15s}"
                                           for b in k_gpu.batch_size.values))
    if k_cpu is None:
        lines.append(f"(no CPU table: no panel ({panel}) in the CPU results; make figure-1 DEVICE=cpu, "
                     "or scripts/gpu-check --cpu-results DIR)")
    return lines


def throughput_line(gpu, wall, peak, panel="b"):
    sub = gpu.sel(panel=panel)
    steps, trial_s = sub["steps"].values.astype(float), sub["wall_time"].values.astype(float)
    ran = np.isfinite(trial_s) & (steps > 0)
    examples = float((steps * sub.batch_size.values[None, :, None])[ran].sum())
    busy = float(trial_s[ran].sum())
    return (f"trained {examples:,.0f} examples in {busy:.0f} s of trial time: "
            f"{examples / max(busy, 1e-9):,.0f} examples/s per worker, "
            f"{examples / max(float(wall), 1e-9):,.0f} examples/s over the {float(wall):.0f} s run; "
            f"peak device memory {peak} MiB (nvidia-smi, sampled every second)")


def main(argv):
    gpu_dir, cpu_dir, wall, peak = argv
    gpu = load(gpu_dir)
    if gpu is None:
        print(f"gpu-check: no {gpu_dir}/{NAME}: the run did not finish", file=sys.stderr)
        return 1
    print("\n".join(kstar_table(gpu, load(cpu_dir))))
    print(throughput_line(gpu, wall, peak))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
