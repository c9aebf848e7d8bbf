"""The package's layout, read from its source: floors, no upward import, no import cycle.

Every ``import`` statement of every module under src/scratchcnn is read with :mod:`ast`, the
ones inside functions (lazy imports) included, and resolved to the module it loads. Then:

* no import cycle anywhere (a lazy import that closes a circle counts);
* the ground floor (``scratchcnn.nn`` and ``scratchcnn.kernels``) imports nothing of scratchcnn
  but each other, ``errors`` and ``random``;
* every other module imports only from its own floor or the floors below it, and nothing but
  the application wing itself (and ``__main__``) imports ``scratchcnn.app``;
* every layer file under ``nn/`` (the ``Module`` base and the loops aside) stays a page of at
  most about 200 lines.
"""
import ast
import pathlib

SRC = pathlib.Path(__file__).resolve().parents[1] / "src"
PACKAGE = "scratchcnn"

GROUND = ("nn", "kernels")
#: floor of each top-level part of the package; the ground floor is 1
FLOORS = {
    "errors": 0, "random": 0, "fileio": 0, "threads": 0,
    "nn": 1, "kernels": 1,
    "losses": 2, "optim": 2,
    "callbacks": 3, "training": 3, "summary": 3, "gradcheck": 3, "serialization": 3, "model": 3,
    "diagnostics": 3, "parallel": 3,
    "datasets": 4, "images": 4, "metrics": 4, "doctor": 4,
    "app": 5,
    "__init__": 6, "__main__": 7,
}
GROUND_MAY_IMPORT = {"nn", "kernels", "errors", "random"}
LAYER_PAGE_LINES = 210
NOT_LAYER_PAGES = {"__init__.py", "module.py", "loops.py", "sizes.py", "checks.py"}   # no layer on these


def module_files(root):
    """{dotted module name: path} of every .py file under ``root/PACKAGE``."""
    out = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports_of(name, path, modules):
    """The scratchcnn modules that ``name`` (at ``path``) imports, with line numbers."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                base = ".".join(base + ([node.module] if node.module else []))
            else:
                base = node.module
            # `from pkg import sub` loads the submodule pkg.sub when there is one
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:       # `import scratchcnn.nn.conv as c` etc.
                target = target.rpartition(".")[0]
            if target and target != name and target.split(".")[0] == PACKAGE:
                found.append((target, node.lineno))
    return found


def part_of(name):
    """The top-level part a module belongs to: ``scratchcnn.nn.conv`` -> ``nn``."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def find_cycles(graph):
    """Every strongly connected component of more than one module (or a self-loop), sorted."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):                                  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph.get(v, ()):
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def layout_problems(root):
    """Human-readable problems with the layout of the package under ``root``; [] when it is kept."""
    modules = module_files(root)
    graph, problems = {}, []
    for name, path in modules.items():
        edges = imports_of(name, path, modules)
        graph[name] = {t for t, _ in edges}
        me = part_of(name)
        if me not in FLOORS:
            problems.append(f"{name}: not on any floor (add it to FLOORS in tests/test_layout.py)")
            continue
        for target, line in edges:
            them = part_of(target)
            where = f"{path.relative_to(root)}:{line}: {name} imports {target}"
            if them not in FLOORS:
                continue
            if me in GROUND and them not in GROUND_MAY_IMPORT:
                problems.append(f"{where} (the ground floor imports only nn, kernels, errors, random)")
            elif FLOORS[them] > FLOORS[me] and me not in ("__main__",):
                problems.append(f"{where} (floor {FLOORS[them]} above floor {FLOORS[me]})")
            elif them == "app" and me not in ("app", "__main__"):
                problems.append(f"{where} (only the application wing imports scratchcnn.app)")
    for cycle in find_cycles(graph):
        problems.append("import cycle: " + " -> ".join(cycle))
    return problems


def test_the_package_keeps_its_floors_and_has_no_import_cycle():
    assert layout_problems(SRC) == []


def test_every_layer_file_is_a_page():
    long = {p.name: n for p in (SRC / PACKAGE / "nn").glob("*.py") if p.name not in NOT_LAYER_PAGES
            for n in [len(p.read_text().splitlines())] if n > LAYER_PAGE_LINES}
    assert long == {}, f"layer files longer than {LAYER_PAGE_LINES} lines: {long}"


def _write(root, files):
    for rel, text in files.items():
        path = root / PACKAGE / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_checker_finds_cycles_and_upward_imports(tmp_path):
    _write(tmp_path, {
        "__init__.py": "",
        "errors.py": "",
        "nn/__init__.py": "from .conv import Conv2D\n",
        "nn/conv.py": "def f():\n    from ..training import fit\n",        # lazy, upward
        "kernels/__init__.py": "from ..fileio import atomic_write\n",         # ground floor -> fileio
        "fileio.py": "",
        "training.py": "from .nn import Conv2D\nfrom .app import cli\n",       # a cycle; app from below
        "app/__init__.py": "",
        "app/cli.py": "",
        "app/report.py": "def g():\n    from .experiment import x\n",          # lazy cycle in the wing
        "app/experiment.py": "from .report import g\n",
        "shiny.py": "",                                                          # on no floor
    })
    problems = "\n".join(layout_problems(tmp_path))
    assert "scratchcnn.nn.conv imports scratchcnn.training (the ground floor" in problems
    assert "scratchcnn.kernels imports scratchcnn.fileio (the ground floor" in problems
    assert "scratchcnn.training imports scratchcnn.app.cli (floor 5 above floor 3)" in problems
    assert "import cycle: scratchcnn.nn -> scratchcnn.nn.conv -> scratchcnn.training" in problems
    assert "import cycle: scratchcnn.app.experiment -> scratchcnn.app.report" in problems
    assert "scratchcnn.shiny: not on any floor" in problems


def test_the_checker_passes_a_clean_tree(tmp_path):
    _write(tmp_path, {"__init__.py": "from .model import Sequential\n", "errors.py": "",
                      "nn/__init__.py": "from .conv import Conv2D\n",
                      "nn/conv.py": "from ..errors import x\nfrom ..kernels import im2col\n",
                      "kernels/__init__.py": "from .im2col import im2col\n", "kernels/im2col.py": "",
                      "model.py": "from .nn import Conv2D\nfrom . import training\n", "training.py": "",
                      "app/__init__.py": "", "app/cli.py": "from ..model import Sequential\n"})
    assert layout_problems(tmp_path) == []


def test_importing_the_library_loads_no_part_of_the_application_wing():
    import subprocess
    import sys
    code = ("import sys, scratchcnn; print(sorted(m for m in sys.modules if m.startswith('scratchcnn.app') "
            "or m.split('.')[0] in ('matplotlib', 'fastapi', 'uvicorn')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert ast.literal_eval(out.strip()) == []


def _defined_names(path):
    """Dotted names defined in a file: functions, classes and their methods."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        if isinstance(node, ast.ClassDef):
            names |= {f"{node.name}.{m.name}" for m in node.body if isinstance(m, ast.FunctionDef)}
    return names


def test_every_stop_of_the_reading_guide_is_a_real_file_and_function():
    import re
    guide = (SRC.parent / "docs" / "reading-guide.md").read_text()
    stops = re.findall(r"\[(src/scratchcnn/[\w/]+\.py)\]\(\.\./\1\), read first: `([\w.]+)`", guide)
    assert len(stops) >= 20
    assert "(docs/reading-guide.md)" in (SRC.parent / "README.md").read_text()      # linked from the README
    for rel, name in stops:
        path = SRC.parent / rel
        assert path.exists(), rel
        assert name in _defined_names(path), f"{rel} defines no {name}"
