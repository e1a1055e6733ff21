"""Manifest files -> the validated, frozen `Pipeline` model. Pure: no database, no imports of user code."""

from __future__ import annotations

from pathlib import Path

from blobflow.errors import ManifestError, SourceLocation
from blobflow.manifest.declarations import read_document
from blobflow.manifest.resolve import build_pipeline
from blobflow.manifest.yamlnodes import load_yaml
from blobflow.model import Pipeline

__all__ = ["load_pipeline", "manifest_files"]


def manifest_files(path: str | Path) -> list[Path]:
    """The files of a pipeline: the file itself, or a directory's *.yaml / *.yml sorted by name."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
        if not files:
            raise ManifestError(f"no *.yaml or *.yml manifest in directory {path}")
        return files
    if not path.exists():
        raise ManifestError(f"pipeline not found: {path}")
    return [path]


def load_pipeline(path: str | Path) -> Pipeline:
    """Read and validate a pipeline; every problem is a ManifestError with file:line:column.

    >>> pipeline = load_pipeline("pipelines/blobs")  # doctest: +SKIP
    >>> [t.name for t in pipeline]  # doctest: +SKIP
    ['Image', 'DetectionParams', 'Detection', 'Detection.Blob', 'SelectedDetection']
    """
    files = manifest_files(path)
    documents = []
    for file in files:
        root_node = load_yaml(_read_text(file), str(file))
        if Path(path).is_dir() and not isinstance(root_node.value, dict):
            # A data file (rows to insert) put beside the manifests: every *.yaml here is a manifest.
            raise ManifestError(
                f"a manifest must be a mapping, got a {type(root_node.value).__name__}; every *.yaml in "
                f"the pipeline directory {path} is read as a manifest: keep data files elsewhere (a "
                "subdirectory, say) or give the manifest file itself with -p",
                root_node.location,
            )
        documents.append(read_document(root_node))
    root = Path(path) if Path(path).is_dir() else Path(path).parent
    return build_pipeline(documents, str(root.resolve()))


def _read_text(file: Path) -> str:
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise ManifestError(f"cannot read manifest {file}: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        column = len(before.rpartition(b"\n")[2].decode("utf-8", errors="replace")) + 1
        raise ManifestError(
            f"not UTF-8 text: byte 0x{data[exc.start]:02x} ({exc.reason}); save the file as UTF-8",
            SourceLocation(str(file), line, column),
        ) from None
