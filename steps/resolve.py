"""`package.module:function` references from the settings, resolved in the container.

One resolver for every stage (featurize's feature function, reconcile's process_func, encode's
recipe functions); each stage wraps the ValueError in its own error type where it needs one."""

from __future__ import annotations

import importlib
import re
from typing import Any, Callable

FUNC_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def load_function(ref: str, what: str = "function") -> Callable[..., Any]:
    """The callable named by `ref`; ValueError naming `what` and the reference otherwise."""
    module_name, _, name = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # noqa: BLE001 - a user module may fail on import in any way
        raise ValueError(f"{what} {ref!r}: cannot import {module_name!r}: {err}") from err
    function = getattr(module, name, None)
    if not callable(function):
        raise ValueError(f"{what} {ref!r}: module {module_name!r} has no function {name!r}")
    return function
