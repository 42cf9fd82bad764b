"""The shape of the code: data flows one way (no import circle between repro's modules, lazy
imports inside functions included), and the command line imports no private name of another
module. Static checks over the source (ast), no TensorFlow."""
import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "repro"


def imports_of(path):
    """{(module imported, names imported from it)} of one repro module, every import statement
    anywhere in the file (module level and inside functions)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:  # from .x import a, b
                out.add((node.module.split(".")[0], tuple(a.name for a in node.names)))
            else:  # from . import x, y
                out.update((a.name, ()) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("repro."):
            out.add((node.module.split(".")[1], tuple(a.name for a in node.names)))
    return out


def graph():
    mods = {p.stem: p for p in PACKAGE.glob("*.py")}
    return {m: {dep for dep, _ in imports_of(p) if dep in mods and dep != m} for m, p in mods.items()}


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


def test_the_scheduling_core_has_no_run_order_machinery_left():
    """Racing replaced run orders, anchors, trials ahead and claim files (issue 18)."""
    assert not (PACKAGE / "ahead.py").exists()
    core = " ".join((PACKAGE / f"{m}.py").read_text() for m in ("run", "race", "cluster", "search"))
    for gone in ("run_order", "reanchor", "anchor_for", "claim(", "cap_now", "_retry_queue",
                 "keras_tuner.src"):
        assert gone not in core, gone
