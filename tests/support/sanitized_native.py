"""pytest plugin (`-p support.sanitized_native`): loads the sanitizer builds of the C
accelerators that `scripts/check_native.py` made, in place of the normal builds.

VERDICT_SANITIZED_NATIVE lists `module=path` pairs. Loaded as a plugin, before any conftest
imports the packages, each module goes into `sys.modules` under its own name, so that the
packages' `from ... import _native` find it there; `pytest_configure` checks they did.
"""

from __future__ import annotations

import importlib.util
import os
import sys

import pytest

_LOADED: dict[str, str] = {}

for _pair in filter(None, os.environ.get("VERDICT_SANITIZED_NATIVE", "").split(os.pathsep)):
    _name, _, _path = _pair.partition("=")
    _spec = importlib.util.spec_from_file_location(_name, _path)
    assert _spec is not None and _spec.loader is not None, _pair
    _module = importlib.util.module_from_spec(_spec)
    sys.modules[_name] = _module
    _spec.loader.exec_module(_module)
    _LOADED[_name] = _path


def pytest_configure(config: pytest.Config) -> None:
    if not _LOADED:
        raise pytest.UsageError("VERDICT_SANITIZED_NATIVE names no sanitizer build")
    from verdict.evaluation import engine
    from verdict_assignment.assign import fastpath

    in_use = {
        "verdict.evaluation._native": engine._native,
        "verdict_assignment.assign._fastpath": fastpath._compiled,
    }
    for name, path in _LOADED.items():
        module = in_use.get(name)
        if module is None or getattr(module, "__file__", None) != path:
            raise pytest.UsageError(f"{name} is not the sanitizer build {path}")
