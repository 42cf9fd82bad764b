"""Property-based fuzzing of spec validation (hypothesis): never a crash, every valid spec plans.

Specs are generated two ways: valid ones drawn from the spec's own ranges, and mutations of a
valid one (a value replaced by something of the wrong type or range, a key deleted, an unknown
key added). For every spec, `load_spec` either returns a Spec or raises UsageError with one line
naming the file; a returned Spec compiles to a plan on each of its grids.
"""
import json
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from repro import plan as plan_mod
from repro.errors import UsageError
from repro import spec as spec_mod
from repro.spec import load_spec

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def toml_value(v):
    if v is None:  # TOML has no null: a string stands in for it (also invalid where it lands)
        return '"none"'
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v == math.inf else "-inf" if v == -math.inf else repr(v))
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(v)


def to_toml(spec):
    """Serialise {"figure": {...}, "panel": [{...}, ...]} (nested tables get [a.b.c] headers)."""
    out = []

    def table(prefix, d):
        for k, v in d.items():
            if not isinstance(v, dict):
                out.append(f"{k} = {toml_value(v)}")
        for k, v in d.items():
            if isinstance(v, dict):
                out.append(f"[{prefix}.{k}]")
                table(f"{prefix}.{k}", v)

    for key, value in spec.items():
        if isinstance(value, list) and all(isinstance(x, dict) for x in value):
            for item in value:
                out.append(f"[[{key}]]")
                table(key, item)
        elif isinstance(value, dict):
            out.append(f"[{key}]")
            table(key, value)
        else:
            out.append(f"{key} = {toml_value(value)}")
    return "\n".join(out) + "\n"


WORKLOADS = {"sgd": ("learning_rate",), "momentum": ("learning_rate", "momentum"),
             "nesterov": ("learning_rate", "momentum")}


@st.composite
def valid_specs(draw):
    optimizer = draw(st.sampled_from(sorted(WORKLOADS)))
    schedule = draw(st.sampled_from(["constant", "linear_decay"]))
    lo = draw(st.floats(1e-5, 0.1))
    search = {"learning_rate": {"min": lo, "max": lo * draw(st.floats(1.5, 1e4)), "scale": "log"}}
    if "momentum" in WORKLOADS[optimizer]:
        search["momentum"] = {"min": 0.5, "max": draw(st.floats(0.6, 0.9999)), "scale": "reverse_log"}
    if schedule == "linear_decay":
        a = draw(st.integers(10, 1000))
        search["decay_steps"] = {"min": a, "max": a + draw(st.integers(1, 5000)), "scale": "linear"}
        search["end_factor"] = {"min": 1e-4, "max": 0.1, "scale": "log"}
    max_steps = draw(st.integers(1, 50000))

    def grid():
        # up to CIFAR-10's training split (45,000), the smallest batch-size limit
        return {"batch_sizes": draw(st.lists(st.integers(1, 45_000), min_size=1, max_size=6, unique=True)),
                "sparsities": draw(st.lists(st.floats(0.0, 0.999), min_size=1, max_size=4, unique=True)),
                "trials": draw(st.integers(1, 200)), "max_steps": max_steps,
                "eval_every": draw(st.integers(1, max_steps)),
                "eval_per_octave": draw(st.integers(0, 16))}

    panel = {"id": draw(st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True)),
             "dataset": draw(st.sampled_from(["mnist", "fashion_mnist", "cifar10"])),
             "model": draw(st.sampled_from(["simple_cnn", "resnet8"])),
             "optimizer": optimizer, "schedule": schedule,
             "goal_error": draw(st.floats(0.001, 0.999)),
             "claims": draw(st.lists(st.sampled_from(["linear_scaling", "plateau", "sparse_slower",
                                                      "sparse_c1_larger"]), unique=True)),
             "search": search, "grid": {"full": grid()}}
    if draw(st.booleans()):
        panel["grid"]["reduced"] = grid()
    return {"figure": {"id": "figure-fuzz", "title": "fuzz", "seed": draw(st.integers(0, 2**30))},
            "panel": [panel]}


def paths(d, prefix=()):
    """Every key path in a spec dict (into panel 0)."""
    for k, v in d.items():
        here = prefix + (k,)
        yield here
        if isinstance(v, dict):
            yield from paths(v, here)
        elif isinstance(v, list) and v and isinstance(v[0], dict):
            yield from paths(v[0], here + (0,))


# Huge integers: TOML's 64-bit edge, beyond it, and far beyond (hex literals of any size).
HUGE = st.one_of(st.sampled_from([2**31, 2**32, 10**11, 2**63 - 1, 2**63, 2**64, 10**30, 10**400]),
                 st.integers(2**16, 2**70), st.integers(-2**70, -1))
JUNK = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), HUGE,
                 st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
                 st.lists(st.integers(-5, 5), max_size=3), st.just([]), st.just(0), st.just(1.0))


@st.composite
def mutated_specs(draw):
    spec = draw(valid_specs())
    for _ in range(draw(st.integers(1, 3))):
        all_paths = list(paths(spec))  # an earlier mutation may have removed some
        if not all_paths:
            break
        path = draw(st.sampled_from(all_paths))
        parent = spec
        for k in path[:-1]:
            parent = parent[k]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(JUNK)
        elif action == "delete":
            del parent[path[-1]]
        else:
            parent[draw(st.from_regex(r"[a-z_]{1,10}", fullmatch=True))] = draw(JUNK.filter(lambda v: v is not None))
    return spec


def check(spec, tmp_path):
    text = to_toml(spec)
    path = tmp_path / "figure-fuzz.toml"
    path.write_text(text)
    try:
        sp = load_spec(path)
    except UsageError as e:
        assert "\n" not in str(e) and path.name in str(e), str(e)
        return None
    for grid in {g for p in sp.panels for g in p.grids}:
        plan = plan_mod.compile_plan(sp, grid)
        d = plan_mod.describe(plan)
        assert d["totals"]["study_points"] == sum(len(p.points) for p in plan.panels)
    return sp


@SETTINGS
@given(spec=valid_specs())
def test_every_valid_spec_loads_and_plans(spec, tmp_path):
    assert check(spec, tmp_path) is not None, to_toml(spec)


@SETTINGS
@given(spec=mutated_specs())
def test_mutated_specs_never_crash_validation(spec, tmp_path):
    check(spec, tmp_path)  # a Spec that plans, or one UsageError line; anything else fails


SIZE_KEYS = ("batch_sizes", "trials", "max_steps", "eval_every", "eval_per_octave", "max_examples")


@st.composite
def huge_size_specs(draw):
    """A valid spec with one to three size fields set to huge integers."""
    spec = draw(valid_specs())
    for _ in range(draw(st.integers(1, 3))):
        panel = spec["panel"][0]
        target = draw(st.sampled_from(["grid", "seed", "sobol_seed", "decay_steps"]))
        value = draw(HUGE)
        if target in ("seed", "sobol_seed"):
            spec["figure"][target] = value
        elif target == "decay_steps" and "decay_steps" in panel["search"]:
            panel["search"]["decay_steps"][draw(st.sampled_from(["min", "max"]))] = value
        else:
            grid = panel["grid"][draw(st.sampled_from(sorted(panel["grid"])))]
            key = draw(st.sampled_from(SIZE_KEYS))
            grid[key] = [value] + grid[key][1:] if key == "batch_sizes" else value
    return spec


@settings(SETTINGS, deadline=5000)  # a hang or a huge allocation fails here (answers take ms)
@given(spec=huge_size_specs())
def test_huge_sizes_are_a_spec_or_one_usage_error(spec, tmp_path):
    path = tmp_path / "figure-fuzz.toml"
    path.write_text(to_toml(spec))
    try:
        sp = load_spec(path)
    except UsageError as e:
        assert "\n" not in str(e) and path.name in str(e) and len(str(e)) < 500, str(e)
        return
    for grid in {g for p in sp.panels for g in p.grids}:
        plan = plan_mod.compile_plan(sp, grid)
        d = plan_mod.describe(plan, with_parameters=False)
        assert d["totals"]["evaluations_at_most"] <= spec_mod.MAX_STORED_ERRORS
