"""No stored content is ever unpickled: nothing the jobs or the builder run imports a pickle
module or calls a loader that unpickles (what a bucket holds is data, never code to run)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PICKLERS = {"pickle", "_pickle", "cPickle", "cloudpickle", "dill", "marshal", "shelve", "jsonpickle"}
UNPICKLING_CALLS = {("joblib", "load"), ("pd", "read_pickle"), ("pandas", "read_pickle"), ("torch", "load")}


def offences(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name.split(".")[0] in PICKLERS]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PICKLERS:
            found.append(f"from {node.module} import ...")
        elif isinstance(node, ast.ImportFrom) and node.module in ("joblib", "pandas") and \
                any(a.name in ("load", "read_pickle") for a in node.names):
            found.append(f"from {node.module} import {', '.join(a.name for a in node.names)}")
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
                (node.value.id, node.attr) in UNPICKLING_CALLS:
            found.append(f"{node.value.id}.{node.attr}")
        elif isinstance(node, ast.keyword) and node.arg == "allow_pickle" and \
                not (isinstance(node.value, ast.Constant) and node.value.value is False):
            found.append("allow_pickle=...")
    return found


def test_no_code_unpickles_anything():
    files = sorted([*(ROOT / "steps").rglob("*.py"), *(ROOT / "pipeline").rglob("*.py"), ROOT / "deploy.py"])
    assert len(files) > 50
    bad = {str(f.relative_to(ROOT)): offences(f) for f in files}
    assert {f: o for f, o in bad.items() if o} == {}


def test_the_scan_catches_each_way(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import pickle\nfrom dill import loads\nimport joblib\njoblib.load('x')\nimport pandas as pd\n"
                   "pd.read_pickle('y')\nimport numpy as np\nnp.load('z', allow_pickle=True)\n"
                   "from joblib import load\n")
    assert sorted(offences(bad)) == sorted(["import pickle", "from dill import ...", "joblib.load", "pd.read_pickle",
                                            "allow_pickle=...", "from joblib import load"])
