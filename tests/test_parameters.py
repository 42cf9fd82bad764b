"""repro.parameters (closed-form parameter counts) against the built Keras models, and `repro plan`
without TensorFlow. The models are built but never run: no data is read."""
import json
import os
import pathlib
import subprocess
import sys

import pytest

from repro import datasets, parameters

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _spec_shapes():
    """Every (model, input shape) a spec in specs/ names."""
    from repro import spec as spec_mod
    return sorted({(p.model, datasets.INPUT_SHAPES[p.dataset])
                   for sp in spec_mod.load_specs(ROOT / "specs") for p in sp.panels})


# The specs' pairs, plus shapes no spec uses today (odd sizes, other channel counts), so a
# formula that only happens to match the paper's two numbers fails.
SHAPES = sorted(set(_spec_shapes()) | {("simple_cnn", (32, 32, 3)), ("simple_cnn", (29, 31, 2)),
                                       ("resnet8", (28, 28, 1)), ("resnet8", (20, 24, 5))})


@pytest.mark.parametrize("name,shape", SHAPES)
def test_closed_form_equals_the_built_keras_model(name, shape):
    from repro import models
    assert parameters.parameter_count(name, shape) == models.parameter_count(name, shape)


def test_the_paper_counts():
    from repro import models
    assert parameters.parameter_count("simple_cnn", (28, 28, 1)) == models.PARAMETERS["simple_cnn"] == 62_346
    assert parameters.parameter_count("resnet8", (32, 32, 3)) == models.PARAMETERS["resnet8"] == 75_050


def test_unknown_model_and_too_small_input_are_errors():
    with pytest.raises(ValueError, match="unknown model"):
        parameters.parameter_count("vgg", (32, 32, 3))
    with pytest.raises(ValueError, match="12 x 12"):
        parameters.parameter_count("simple_cnn", (8, 8, 1))


def test_importing_it_needs_no_tensorflow():
    code = ("import sys, repro.parameters, repro.plan; "
            "print(any(m.split('.')[0] in ('tensorflow', 'keras') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)
    assert out.stdout.strip() == "False"


def test_repro_plan_imports_no_tensorflow_and_prints_the_counts():
    """`python -m repro plan` on every spec: -X importtime lists every module imported."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "repro", "plan", "specs", "--json"],
                          capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines()
                if line.startswith("import time:")}
    assert "repro.plan" in imported  # the listing works
    heavy = sorted(m for m in imported if m.split(".")[0] in ("tensorflow", "keras"))
    assert not heavy, heavy[:5]
    figures = {d["figure"]: d for d in json.loads(proc.stdout)["figures"]}
    assert figures["figure-1"]["models"]["simple_cnn"]["parameters"] == 62_346
    assert figures["figure-10"]["models"]["resnet8"]["parameters"] == 75_050


def test_device_count_for_the_plan_without_tensorflow(monkeypatch):
    """`repro plan`'s placement counts devices without starting TensorFlow: the CPU build sees
    no GPU whatever the machine has; else CUDA_VISIBLE_DEVICES, else the driver's device files."""
    from importlib import metadata
    from repro import devices
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)  # as in `repro plan`
    real = metadata.distribution

    def only(name):
        def distribution(dist):
            if dist == "tensorflow-cpu" and name != "tensorflow-cpu":
                raise metadata.PackageNotFoundError(dist)
            return real("pip")
        return distribution

    monkeypatch.setattr(metadata, "distribution", only("tensorflow-cpu"))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    assert devices.gpu_count_without_runtime() == 0
    monkeypatch.setattr(metadata, "distribution", only("tensorflow"))
    assert devices.gpu_count_without_runtime() == 2
    assert devices.device_count_without_runtime() == 2
    for hidden in ("", "-1"):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", hidden)
        assert devices.gpu_count_without_runtime() == 0
    monkeypatch.setenv("REPRO_LOGICAL_CPUS", "4")
    assert devices.device_count_without_runtime() == 4  # no GPU: the logical CPUs
    monkeypatch.delenv("REPRO_LOGICAL_CPUS")
    assert devices.device_count_without_runtime() == 1
