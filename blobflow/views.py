"""Views: plotting callables declared under `views:` in the manifest, run by `blobflow view NAME`.

    views:
      blobs:
        function: views:plot_blobs      # views.py beside the manifest
        description: every image with its detected blobs

See `run_view` for what a view function receives and returns.
"""

from __future__ import annotations

import inspect
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from blobflow.callables import import_callable, required_parameters
from blobflow.errors import BlobflowError, UsageError
from blobflow.model import Pipeline, View

if TYPE_CHECKING:
    from blobflow.api import PipelineHandle

ARGUMENTS = ("pipe", "out")  # what blobflow passes, each when the function accepts it


class ViewFailed(BlobflowError):
    """A view function raised, or returned something blobflow cannot save: the user's code failed, as a
    make function's failure does, so the exit status is 1 (2 stays for usage and manifest errors)."""

    exit_code = 1


@dataclass(frozen=True)
class ViewResult:
    view: View
    path: Path
    saved_by: str  # "view" when the function wrote the file itself, else "blobflow"


def find_view(pipeline: Pipeline, name: str) -> View:
    """The view called `name` (case-insensitive); an error listing the pipeline's views otherwise."""
    views = pipeline.views
    found = views.get(name) or next((v for v in views.values() if v.name.lower() == name.lower()), None)
    if found is not None:
        return found
    if not views:
        raise UsageError(f"unknown view '{name}': the pipeline declares no views (add a 'views:' section)")
    listing = "; ".join(f"{v.name} ({v.description})" if v.description else v.name for v in views.values())
    raise UsageError(f"unknown view '{name}'; the pipeline's views: {listing}")


def view_function(pipeline: Pipeline, view: View) -> Callable[..., Any]:
    """Import the view's function from beside the manifest and check blobflow can call it."""
    reference = f"{view.module}:{view.function}"
    function = import_callable(reference, pipeline.root, view.location)
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):  # no signature to check: trust it
        return function
    for name in required_parameters(parameters):
        if name not in ARGUMENTS:
            raise UsageError(
                f"view '{view.name}': '{reference}' requires argument '{name}'; blobflow passes only "
                f"{' and '.join(repr(a) for a in ARGUMENTS)}"
            )
    return function


def check_output(out: Path) -> None:
    """Refuse, before any work, a file name matplotlib cannot write (no or unknown extension)."""
    from matplotlib.backend_bases import FigureCanvasBase

    supported = FigureCanvasBase.get_supported_filetypes()
    suffix = out.suffix.lower().lstrip(".")
    if suffix not in supported:
        raise UsageError(
            f"cannot save a figure as {str(out)!r}: use one of the extensions "
            + ", ".join(f".{s}" for s in sorted(supported))
        )


def use_headless_backend() -> None:
    """Select matplotlib's Agg backend: views write files, there may be no screen (the CLI calls this)."""
    try:
        import matplotlib
    except ImportError:
        raise UsageError("views need matplotlib: pip install 'blobflow[plot]'") from None
    matplotlib.use("Agg")


def run_view(pipe: PipelineHandle, name: str, out: str | Path) -> ViewResult:
    """Run the view `name` of the pipeline and make sure its figure ends up in `out`.

    The contract of a view function (`module:function` under `views:`, imported from beside the
    manifest, as make functions are):

    - It is called with keyword arguments, each only when its signature names it (or takes **kwargs):
      `pipe`, the open `PipelineHandle` (query with `pipe.query("Detection * Image").fetch(...)`,
      `.fetch1(...)`, `.to_arrays("x", "y")`, or `pipe.table(name)`), and `out`, the output file as a
      `pathlib.Path` (its directory exists). Any other required parameter is an error.
    - It draws with matplotlib and either
      * returns the figure (a `matplotlib.figure.Figure`, or anything with `savefig(path)`, or an Axes):
        blobflow saves it to `out` with `savefig(out)` (format from the extension, the figure's own
        size and dpi) unless the function wrote `out` itself;
      * or writes `out` itself (it must then accept `out`) and returns None;
      * or returns None after drawing on pyplot: blobflow saves the pyplot figure the call created.
    - Whatever it raises becomes one error line, `view 'NAME' failed: Type: message (file:line)`,
      exit status 1 (`--debug` shows the traceback). blobflow's own errors (a bad query) pass unchanged.
    - Pyplot figures the call opened are closed afterwards.
    """
    view = find_view(pipe.model, name)
    out = Path(out)
    check_output(out)
    function = view_function(pipe.model, view)
    out.parent.mkdir(parents=True, exist_ok=True)
    before = _stat(out)
    pyplot = sys.modules.get("matplotlib.pyplot")
    open_before = set(pyplot.get_fignums()) if pyplot else set()
    try:
        result = function(**_arguments(function, {"pipe": pipe, "out": out}))
        pyplot = sys.modules.get("matplotlib.pyplot")
        opened = [n for n in pyplot.get_fignums() if n not in open_before] if pyplot else []
        try:
            saved_by = _save(view, result, out, before, opened)
        finally:
            for number in opened:
                pyplot.close(number)
    except BlobflowError:
        raise
    except Exception as exc:
        raise ViewFailed(f"view '{view.name}' failed: {_describe(exc, pipe.model.root)}") from exc
    return ViewResult(view, out, saved_by)


def _arguments(function: Callable[..., Any], available: dict[str, Any]) -> dict[str, Any]:
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return available
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return available
    return {name: value for name, value in available.items() if name in parameters}


def _save(view: View, result: Any, out: Path, before: tuple | None, opened: list[int]) -> str:
    written = _stat(out) is not None and _stat(out) != before
    if result is None:
        if written:
            return "view"
        if opened:
            sys.modules["matplotlib.pyplot"].figure(opened[-1]).savefig(out)
            return "blobflow"
        raise ViewFailed(
            f"view '{view.name}' returned nothing and wrote nothing: return the matplotlib Figure "
            f"(or write to the 'out' argument)"
        )
    figure = getattr(result, "figure", None) if not hasattr(result, "savefig") else result
    if figure is None or not hasattr(figure, "savefig"):
        raise ViewFailed(
            f"view '{view.name}' returned an object of type {type(result).__name__}; expected a matplotlib "
            "Figure or None"
        )
    if written:
        return "view"
    figure.savefig(out)
    return "blobflow"


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


def _describe(exc: BaseException, root: str) -> str:
    """`Type: message (file:line)` on one line; the line is the innermost frame in the pipeline's own
    files (beside the manifest), else the innermost frame."""
    message = " ".join(str(exc).split())
    frames = traceback.extract_tb(exc.__traceback__)
    own = [f for f in frames if Path(f.filename).resolve().is_relative_to(Path(root).resolve())]
    frame = (own or frames or [None])[-1]
    where = f" ({frame.filename}:{frame.lineno})" if frame else ""
    return f"{type(exc).__name__}: {message}{where}" if message else f"{type(exc).__name__}{where}"
