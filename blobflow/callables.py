"""Importing the user's make functions and views: lazily, from beside the manifest, with clear errors."""

from __future__ import annotations

import importlib
import inspect
import sys
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from blobflow.errors import ManifestError, SourceLocation
from blobflow.model import Make, Pipeline


def import_callable(reference: str, root: str, location: SourceLocation | None = None) -> Callable[..., Any]:
    """Import `module:function`, with the manifest's directory first on sys.path."""
    module_name, _, function_name = reference.partition(":")
    if root not in sys.path:
        sys.path.insert(0, root)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ManifestError(
                f"cannot import '{reference}': no module named '{exc.name}' "
                f"(looked beside the manifest, in {root}, and on sys.path)",
                location,
            ) from None
        # the module was found, but something it imports was not
        raise ManifestError(f"cannot import '{reference}': {_failure(exc)}", location) from None
    except Exception as exc:
        raise ManifestError(f"cannot import '{reference}': {_failure(exc)}", location) from None
    function = getattr(module, function_name, None)
    if function is None:
        raise ManifestError(
            f"cannot import '{reference}': module '{module_name}' has no '{function_name}'", location
        )
    if not callable(function):
        raise ManifestError(f"'{reference}' is not callable", location)
    return function


def _failure(exc: BaseException) -> str:
    """The exception, and the line of Python code that raised it: the deepest frame that is not the
    import machinery's (for a missing import, the user's `import` line)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith("<frozen")]
    where = f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


def required_parameters(parameters: Mapping[str, inspect.Parameter]) -> list[str]:
    """The parameters a call must supply: no default, and not *args or **kwargs."""
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return [n for n, p in parameters.items() if p.default is p.empty and p.kind not in variadic]


def check_make_signature(make: Make, function: Callable[..., Any]) -> None:
    """The function must accept every declared input and need nothing blobflow does not pass."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # builtins without signatures: trust them
        return
    parameters = signature.parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    given = {i.name for i in make.inputs} | {"key", "ctx"}
    for make_input in make.inputs:
        if make_input.name not in parameters and not takes_any:
            raise ManifestError(
                f"'{make.reference}' does not take the declared input '{make_input.name}'", make.location
            )
    for name in required_parameters(parameters):
        if name not in given:
            raise ManifestError(
                f"'{make.reference}' requires argument '{name}', which is neither 'key', 'ctx' "
                f"nor a declared input",
                make.location,
            )


def check_callables(pipeline: Pipeline) -> None:
    """Import every make function and view of the pipeline; raise the first that cannot be used."""
    for table in pipeline:
        if table.make is not None:
            function = import_callable(table.make.reference, pipeline.root, table.make.location)
            check_make_signature(table.make, function)
    for view in pipeline.views.values():
        import_callable(f"{view.module}:{view.function}", pipeline.root, view.location)
