"""Every cross-reference in the package's docstrings names something that exists (a renamed or removed function
leaves none behind): ``:func:``, ``:class:``, ``:meth:``, ``:mod:``, ``:data:``, ``:attr:`` targets, and dotted
``elmokit.x.y`` names in docstrings and comments."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "elmokit"
ROLE = re.compile(r":(?:func|class|meth|mod|data|attr|exc):`~?([A-Za-z_][\w.]*)`")
DOTTED = re.compile(r"(?<![\w/.])(elmokit(?:\.[A-Za-z_]\w*)+)")


def resolves(target: str, module, text: str) -> bool:
    parts = target.split(".")
    if parts[0] == "elmokit":
        for i in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:i]))
            except ImportError:
                continue
            try:
                for name in parts[i:]:
                    obj = getattr(obj, name)
            except AttributeError:
                return False
            return True
        return False
    if "." in target and parts[0] not in vars(module):
        return True  # another package's name (accelerate.Accelerator, ...)
    obj = module
    try:
        for name in parts:
            obj = getattr(obj, name)
        return True
    except AttributeError:
        pass
    classes = [c for _, c in inspect.getmembers(module, inspect.isclass) if c.__module__ == module.__name__]
    if any(hasattr(c, parts[-1]) for c in classes):
        return True
    return f"self.{parts[-1]} =" in text or f"self.{parts[-1]}:" in text  # an instance attribute


def test_every_reference_resolves():
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        module = importlib.import_module(name)
        text = path.read_text(encoding="utf-8")
        for m in ROLE.finditer(text):
            if not resolves(m.group(1), module, text):
                missing.append(
                    f"{path.relative_to(PACKAGE.parent)}:{text[: m.start()].count(chr(10)) + 1}: {m.group(0)}"
                )
        for m in DOTTED.finditer(text):
            line = text.split("\n")[text[: m.start()].count("\n")]
            if "import" in line or line.lstrip().startswith(("-m", '"-m"')) or '"elmokit.' in line:
                continue
            if not resolves(m.group(1), module, text):
                missing.append(
                    f"{path.relative_to(PACKAGE.parent)}:{text[: m.start()].count(chr(10)) + 1}: {m.group(1)}"
                )
    assert not missing, "\n".join(missing)
