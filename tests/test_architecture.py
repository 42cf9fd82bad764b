"""The shape of the code: data flows one way (no import circle between repro's modules, lazy
imports inside functions included), the command line imports no private name of another
module, the claims package stays clear of training, only the training modules import
TensorFlow when imported, modules that read results never import the trainer (repro.run),
and the spec reads its vocabulary without importing the downloader. Static checks over the
source (ast), no TensorFlow."""
import ast
import os
import pathlib
import subprocess
import sys

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "repro"


def module_name(path):
    """A repro module's dotted name inside the package: 'run', 'claims', 'claims.base'."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules():
    """{dotted name: path} of every module of repro, subpackages included."""
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def package_of(path):
    """The dotted package a repro module's relative imports resolve against, as a list."""
    here = module_name(path).split(".") if module_name(path) else []
    return here if path.name == "__init__.py" else here[:-1]


def import_targets(node, package):
    """{(module imported, names imported from it)} of one ast node (empty unless it is an import
    of repro's); modules are dotted names inside repro ('evidence', 'claims.base'), relative
    imports resolved against `package`."""
    out = set()
    if isinstance(node, ast.ImportFrom) and node.level >= 1:
        base = package[:len(package) - (node.level - 1)]
        if node.module:  # from .x import a, b
            out.add((".".join(base + node.module.split(".")), tuple(a.name for a in node.names)))
        else:  # from . import x, y
            out.update((".".join(base + [a.name]), ()) for a in node.names)
    elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("repro."):
        out.add((node.module.split(".", 1)[1], tuple(a.name for a in node.names)))
    elif isinstance(node, ast.ImportFrom) and node.module == "repro":  # from repro import x
        out.update((a.name, ()) for a in node.names)
    elif isinstance(node, ast.Import):
        out.update((a.name.split(".", 1)[1], ()) for a in node.names if a.name.startswith("repro."))
    return out


def imports_of(path):
    """{(module imported, names imported from it)} of one repro module, every import statement
    anywhere in the file (module level and inside functions): `import_targets` of each."""
    package = package_of(path)
    return {t for node in ast.walk(ast.parse(path.read_text())) for t in import_targets(node, package)}


def resolve(name, mods):
    """The module `name` refers to: itself, or the package whose name it is inside
    ('claims.worst' -> 'claims'); None for a name outside repro's modules."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in mods:
            return ".".join(parts[:n])
    return None


def graph():
    mods = modules()
    return {m: {d for dep, _ in imports_of(p) if (d := resolve(dep, mods)) and d != m} for m, p in mods.items()}


def external_targets(node):
    """Top-level names of the non-repro packages one ast node imports (empty unless an import)."""
    if isinstance(node, ast.Import):
        return {a.name.split(".")[0] for a in node.names} - {"repro"}
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        return {node.module.split(".")[0]} - {"repro"}
    return set()


def external_imports(path):
    """Top-level names of the non-repro packages a module imports, anywhere in the file."""
    return {n for node in ast.walk(ast.parse(path.read_text())) for n in external_targets(node)}


def reachable(g, start):
    """Every module `start` imports, directly or through others."""
    seen, todo = set(), [start]
    while todo:
        for d in g[todo.pop()] - seen:
            seen.add(d)
            todo.append(d)
    return seen


def cycle(g):
    """One import circle of graph `g` as a list of modules, or None."""
    state = {}

    def visit(m, path):
        state[m] = "open"
        for d in sorted(g[m]):
            if state.get(d) == "open":
                return path[path.index(d):] + [d]
            if d not in state and (found := visit(d, path + [d])):
                return found
        state[m] = "done"
        return None

    for m in sorted(g):
        if m not in state and (found := visit(m, [m])):
            return found
    return None


def test_no_import_circle_between_repro_modules():
    assert cycle(graph()) is None, " -> ".join(cycle(graph()))


def test_the_circle_check_finds_a_circle():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) is None


def test_the_command_line_imports_no_private_name_of_another_module():
    private = [(mod, n) for mod, names in imports_of(PACKAGE / "__main__.py") for n in names
               if n.startswith("_")]
    assert private == []
    # nor reaches for one through a module: `x._name`
    tree = ast.parse((PACKAGE / "__main__.py").read_text())
    own = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    reached = [f"{n.value.id}.{n.attr}" for n in ast.walk(tree)
               if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
               and n.attr.startswith("_") and not n.attr.startswith("__")
               and n.value.id not in ("self", "args", "sys", "os") and n.attr not in own]
    assert reached == [], reached


def test_the_benchmark_stands_apart_from_the_library():
    """repro.bench is a package of its own that only the command line imports."""
    g = graph()
    bench = {m for m in g if m == "bench" or m.startswith("bench.")}
    assert {"bench", "bench.driver", "bench.sides", "bench.naive", "bench.compare"} <= bench
    users = sorted(m for m, deps in g.items() if m not in bench and deps & bench)
    assert users == ["__main__"], users


def test_the_scheduling_core_has_no_run_order_machinery_left():
    """Racing replaced run orders, anchors, trials ahead and claim files (issue 18)."""
    assert not (PACKAGE / "ahead.py").exists()
    core = " ".join((PACKAGE / f"{m}.py").read_text()
                    for m in ("run", "race", "records", "progress", "cluster", "search"))
    for gone in ("run_order", "reanchor", "anchor_for", "claim(", "cap_now", "_retry_queue",
                 "keras_tuner.src"):
        assert gone not in core, gone


CLAIMS_PACKAGE = [m for m in modules() if m == "claims" or m.startswith("claims.")]


def test_the_graph_sees_the_claims_package_and_its_modules():
    g = graph()
    assert {"claims", "claims.base", "claims.registry", "claims.verify_data"} <= set(g)
    assert "claims.base" in g["claims.kstar"] and "evidence" in g["claims.context"]
    assert "claims" in g["report"]  # from . import claims


def test_the_claims_package_imports_neither_training_nor_tensorflow():
    g = graph()
    for m in CLAIMS_PACKAGE:
        assert not {"run", "engine"} & ({m} | reachable(g, m)), m
        assert not {"tensorflow", "keras"} & external_imports(modules()[m]), m
    code = ("import sys, repro.claims; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras', 'repro'}))")
    env = {**os.environ, "PYTHONPATH": str(PACKAGE.parent)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["['repro']"], out.stdout + out.stderr
    assert "repro.run" not in out.stdout


def test_the_claims_are_registered_by_hand_not_looked_up_in_globals():
    for m in CLAIMS_PACKAGE:
        tree = ast.parse(modules()[m].read_text())
        assert not [n for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id in ("globals", "locals")], m


# The kind of study a spec describes (a K* search or smoothness runs) is read in repro.study
# alone (study.study_kind); everything else asks the kind. spec.py defines the kinds and parses
# each kind's keys, so it is the one other module that may name them.
KIND_HOME = {"study", "spec"}


def kind_branches(source):
    """Where `source` decides on a study's kind itself, as 'line N: what': naming
    spec.SMOOTHNESS_KINDS, reading a results file's `kind` attribute, or comparing with a kind's
    name (a figure kind of repro.spec, or "smoothness")."""
    from repro import spec as spec_mod
    words = set(spec_mod.FIGURE_KINDS) | {"smoothness"}

    def kind_words(node):
        items = node.elts if isinstance(node, (ast.Tuple, ast.List, ast.Set)) else [node]
        return [i.value for i in items if isinstance(i, ast.Constant) and i.value in words]

    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Name, ast.Attribute)) and \
                (node.id if isinstance(node, ast.Name) else node.attr) == "SMOOTHNESS_KINDS":
            found.append(f"line {node.lineno}: names SMOOTHNESS_KINDS")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" \
                and isinstance(node.func.value, ast.Attribute) and node.func.value.attr == "attrs" \
                and node.args and isinstance(node.args[0], ast.Constant) and node.args[0].value == "kind":
            found.append(f"line {node.lineno}: reads attrs.get('kind')")
        elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) \
                and node.value.attr == "attrs" and isinstance(node.slice, ast.Constant) \
                and node.slice.value == "kind" and isinstance(node.ctx, ast.Load):
            found.append(f"line {node.lineno}: reads attrs['kind']")
        elif isinstance(node, ast.Compare):
            named = [w for side in [node.left, *node.comparators] for w in kind_words(side)]
            if named:
                found.append(f"line {node.lineno}: compares with {', '.join(sorted(set(named)))}")
    return found


def test_only_the_study_module_branches_on_the_kind_of_study():
    found = {name: kind_branches(path.read_text()) for name, path in modules().items()
             if name not in KIND_HOME}
    assert {name: lines for name, lines in found.items() if lines} == {}
    assert kind_branches((PACKAGE / "study.py").read_text())  # the one place that does


def test_the_kind_check_finds_a_branch_on_the_kind():
    assert kind_branches("if spec.kind in spec_mod.SMOOTHNESS_KINDS:\n    pass\n") == \
        ["line 1: names SMOOTHNESS_KINDS"]
    assert kind_branches("smooth = ds.attrs.get('kind') == 'smoothness'\n") == \
        ["line 1: compares with smoothness", "line 1: reads attrs.get('kind')"]
    assert kind_branches("x = ds.attrs['kind']\nif fig.kind in ('lipschitz', 'training_loss'): pass\n") == \
        ["line 1: reads attrs['kind']", "line 2: compares with lipschitz, training_loss"]
    assert kind_branches("ds.attrs.update(kind='smoothness')\nif kind == 'trials': pass\n") == []


# ------------------------------------------------------------------ when modules are imported
def scoped(tree):
    """(node, the function and class definitions it lies in, outermost first) of every node."""
    todo = [(tree, ())]
    while todo:
        node, where = todo.pop()
        yield node, where
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            where = where + (node,)
        todo.extend((child, where) for child in ast.iter_child_nodes(node))


def in_function(where):
    """Whether a node inside the definitions `where` (from `scoped`) runs only when called."""
    return any(isinstance(d, (ast.FunctionDef, ast.AsyncFunctionDef)) for d in where)


def load_time_imports(tree, package):
    """({repro module}, {external package}) a module's source imports when the module itself is
    imported: every import outside function bodies (a class body runs on import too)."""
    repro, external = set(), set()
    for node, where in scoped(tree):
        if not in_function(where):
            repro |= {m for m, _ in import_targets(node, package)}
            external |= external_targets(node)
    return repro, external


def load_time_graph():
    """{module: the repro modules it imports when it is imported (not those imported inside its
    functions), each with the packages it lies in, whose __init__ runs too}."""
    mods = modules()
    g = {}
    for m, p in mods.items():
        deps = set()
        for dep in load_time_imports(ast.parse(p.read_text()), package_of(p))[0]:
            if (d := resolve(dep, mods)) is not None:
                parts = d.split(".")
                deps |= {".".join(parts[:n]) for n in range(1, len(parts) + 1)} & set(mods)
        g[m] = deps - {m}
    return g


# The modules that build, train or serve models, and so import TensorFlow (or keras, or
# keras-tuner, which imports keras) when imported. Every other module imports it only inside the
# function that needs it: `repro plan`, `verify`, `report` and the claims never load it.
TRAINING = ("engine", "engine_jax", "models", "optim", "cluster",
            "bench.naive")  # the benchmark's plain-Keras baseline trains too
TENSORFLOW = {"tensorflow", "keras", "keras_tuner", "jax"}  # jax: the JAX engine's framework


def test_the_load_time_check_tells_module_level_imports_from_imports_in_functions():
    tree = ast.parse("import keras\nfrom . import run\nclass A:\n    import tensorflow\n"
                     "    def f(self):\n        import keras_tuner\n        from . import engine\n"
                     "def g():\n    import numpy\n")
    assert load_time_imports(tree, []) == ({"run"}, {"keras", "tensorflow"})


def test_only_the_training_modules_import_tensorflow_when_imported():
    g = load_time_graph()
    for m, path in modules().items():
        heavy = TENSORFLOW & load_time_imports(ast.parse(path.read_text()), package_of(path))[1]
        if m in TRAINING:
            assert heavy, f"{m} imports no TensorFlow when imported: take it out of TRAINING"
            continue
        assert not heavy, f"{m} imports {sorted(heavy)} when imported: import it in the function that trains"
        reached = set(TRAINING) & reachable(g, m)
        assert not reached, f"{m} imports the training modules {sorted(reached)} when imported"


# Modules that read stored results: none imports the trainer, repro.run, directly or through
# another module, lazily or not. (repro.study and repro.decide also start runs: see below.)
READERS = ["records", "verify", "report", "summary", "evidence", "analysis", "figures", "cost",
           *CLAIMS_PACKAGE]


def where_imported(tree, package, module):
    """Where a module's source imports repro `module`: for each import of it, the names of the
    class and function definitions it lies in, outermost first (() at module level)."""
    return [tuple(d.name for d in where) for node, where in scoped(tree)
            if module in {m for m, _ in import_targets(node, package)}]


def test_modules_that_read_results_never_import_the_trainer():
    g = graph()
    assert set(READERS) <= set(g)
    # verify and report ask repro.study how a spec's results are read; study imports the trainer
    # in SearchStudy.run alone, and smoothness_run in measure_run alone (the next test holds
    # both there), which no reader calls
    for runner in ("study", "smoothness_run"):
        assert "run" in g[runner]
        g[runner] = g[runner] - {"run"}
    for m in READERS:
        assert "run" not in {m} | reachable(g, m), f"{m} imports the trainer, repro.run"


def test_studies_start_runs_only_in_study_run():
    """repro.study imports the trainer in SearchStudy.run alone, repro.smoothness_run in
    measure_run alone; repro.decide starts its runs through Study.run and imports no trainer of
    its own."""
    study = modules()["study"]
    assert where_imported(ast.parse(study.read_text()), package_of(study), "run") == [("SearchStudy", "run")]
    smoothness = modules()["smoothness_run"]
    assert where_imported(ast.parse(smoothness.read_text()), package_of(smoothness), "run") == [("measure_run",)]
    assert "run" not in graph()["decide"]


def test_the_trainer_checks_find_the_trainer_through_a_module_and_in_any_function():
    assert "run" in reachable({"a": {"b"}, "b": {"run"}, "run": set()}, "a")
    tree = ast.parse("from . import run\nclass S:\n    def run(self):\n        from . import run\n"
                     "def f():\n    from repro import run as r\n")
    assert sorted(where_imported(tree, [], "run")) == [(), ("S", "run"), ("f",)]


def test_the_spec_reads_its_vocabulary_without_importing_the_downloader():
    g = graph()
    assert "data" not in reachable(g, "spec")
    assert "datasets" in g["spec"] and "datasets" in g["plan"] and "datasets" in g["data"]
    assert g["datasets"] == set(), "the vocabulary imports nothing"
