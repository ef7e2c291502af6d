"""Every ```python snippet of README.md and docs/ runs as written (the snippets of one file in
order, in one namespace, in an empty folder: they may write files there)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def snippets(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


@pytest.mark.parametrize("path", [p for p in FILES if snippets(p)], ids=lambda p: p.name)
def test_snippets_run_as_written(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__main__"}
    for k, code in enumerate(snippets(path)):
        exec(compile(code, f"{path.name}, snippet {k + 1}", "exec"), namespace)
    optim = namespace.get("signsim").optim
    for name in [n for n in optim.available() if not optim.registration(n)[1]]:
        namespace["signsim"].optim.unregister(name)  # a snippet may register an optimizer
