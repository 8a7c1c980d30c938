"""The package's modules import each other bottom-up (data -> model -> render -> strategies / pruning -> trainer ->
commands -> cli): scripts/check_imports.py finds no import circle, counting imports inside functions too."""

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECKER = ROOT / "scripts" / "check_imports.py"


def _checker():
    spec = importlib.util.spec_from_file_location("check_imports", CHECKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_package_has_no_import_circles():
    out = subprocess.run([sys.executable, str(CHECKER)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_a_circle_is_found_also_through_an_import_inside_a_function(tmp_path, capsys):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "from .a import run\n",  # a package importing its own modules is no circle
        "a.py": "from .sub import b\n\ndef run():\n    return b.go()\n",
        "sub/__init__.py": "",
        "sub/b.py": "def go():\n    from ..a import run  # deferred: still a circle\n    return run\n",
        "typed.py": "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from .hint import Hint\n",
        "hint.py": "from . import typed\n\nclass Hint:\n    pass\n",  # typed.py's import never runs
    }
    for name, text in files.items():
        (package / name).write_text(text)
    checker = _checker()
    assert checker.main(["--package-dir", str(package)]) == 1
    out = capsys.readouterr().out
    assert "import circle of 2 modules: pkg.a, pkg.sub.b" in out and "typed" not in out and out.count("circle") == 1
    (package / "sub" / "b.py").write_text("def go():\n    return None\n")
    assert checker.main(["--package-dir", str(package)]) == 0
