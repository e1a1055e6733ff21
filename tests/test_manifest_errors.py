"""The broken-manifest corpus: every file in tests/manifests/bad/ (and every directory in bad_dirs/) states
its expected error in its first line, `# error: LINE:COL: part of the message`, and must fail with exactly
that ManifestError, pointing into that file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from blobflow.errors import ManifestError
from blobflow.manifest import load_pipeline

MANIFESTS = Path(__file__).parent / "manifests"
BAD_FILES = sorted((MANIFESTS / "bad").glob("*.yaml"))
BAD_DIRS = sorted(p for p in (MANIFESTS / "bad_dirs").iterdir() if p.is_dir())
EXPECTATION = re.compile(r"# error: (\d+):(\d+): (.+)")
# The problems the corpus must keep covering, by file name.
REQUIRED = {
    "unknown_type", "type_typo_suggestion", "varchar_without_length", "varchar_zero",
    "decimal_without_scale", "enum_empty_value", "enum_repeated_value", "enum_without_values",
    "depends_unknown_table", "references_unknown_table", "table_name_case_mismatch", "cycle_two_tables",
    "cycle_three_tables", "self_dependency", "duplicate_table", "duplicate_attribute_key_and_attributes",
    "duplicate_inherited_attribute", "keyword_attribute_select", "keyword_attribute_order",
    "keyword_table_order", "attribute_camel_case", "attribute_starts_with_digit", "table_snake_case",
    "contents_missing_key", "contents_unknown_attribute", "contents_wrong_type", "contents_repeated_key",
    "contents_on_manual", "make_on_manual", "computed_without_make", "make_reference_without_colon",
    "unknown_tier", "unknown_table_field", "missing_schema", "missing_tables", "empty_tables", "empty_file",
    "tab_indented", "yaml_syntax_error", "nullable_key_attribute", "blob_in_key", "default_wrong_type",
    "depends_nullable", "rename_not_in_parent_key", "index_unknown_attribute",
    "make_input_part_key_not_within", "make_input_unknown_attribute", "key_source_on_manual",
    "no_primary_key",
}  # fmt: skip


def _first_line(file: Path) -> str:
    # Read bytes: one corpus file is deliberately not UTF-8 after its first line.
    return file.read_bytes().split(b"\n", 1)[0].decode("utf-8").rstrip("\r")


def _cases() -> list:
    """(what load_pipeline is given, the file holding the expectation), with the file name as the id."""
    cases = [pytest.param(file, file, id=file.name) for file in BAD_FILES]
    for directory in BAD_DIRS:
        marked = [f for f in sorted(directory.iterdir()) if _first_line(f).startswith("# error:")]
        assert len(marked) == 1, f"{directory}: exactly one file must state the expected error"
        cases.append(pytest.param(directory, marked[0], id=f"{directory.name}/{marked[0].name}"))
    return cases


@pytest.mark.parametrize(("target", "expectation_file"), _cases())
def test_broken_manifest_fails_with_stated_error(target: Path, expectation_file: Path) -> None:
    match = EXPECTATION.fullmatch(_first_line(expectation_file))
    assert match, f"first line of {expectation_file.name} must be '# error: LINE:COL: message'"
    line, column, expected = int(match[1]), int(match[2]), match[3]

    with pytest.raises(ManifestError) as caught:
        load_pipeline(target)

    error = caught.value
    assert type(error) is ManifestError
    assert error.location is not None, f"no position in: {error}"
    assert (Path(error.location.path), error.location.line, error.location.column) == (
        expectation_file,
        line,
        column,
    ), str(error)
    assert expected in error.message
    assert str(error) == f"{expectation_file}:{line}:{column}: {error.message}"
    assert "Traceback" not in str(error)


def test_corpus_has_at_least_35_files() -> None:
    assert len(BAD_FILES) >= 35
    missing = REQUIRED - {f.stem for f in BAD_FILES}
    assert not missing, f"corpus files renamed or removed: {sorted(missing)}"


def test_corpus_expectations_point_inside_their_files() -> None:
    for file in BAD_FILES + [f for d in BAD_DIRS for f in d.iterdir()]:
        first = _first_line(file)
        if not first.startswith("# error:"):
            continue
        match = EXPECTATION.fullmatch(first)
        assert match, file.name
        lines = file.read_bytes().split(b"\n")
        assert 1 <= int(match[1]) <= len(lines), file.name
        assert 1 <= int(match[2]) <= len(lines[int(match[1]) - 1]) + 1, file.name


def _mutants(data: bytes) -> list[bytes]:
    """The file as given, and with each of its lines removed in turn."""
    lines = data.split(b"\n")
    return [data] + [b"\n".join(lines[:i] + lines[i + 1 :]) for i in range(1, len(lines))]


def test_broken_manifests_raise_only_manifest_errors(tmp_path: Path) -> None:
    """Whatever a broken manifest (or a further-damaged copy of it) holds, loading it either succeeds
    or raises a ManifestError that points inside the file: never another exception."""
    outcomes = {"loaded": 0, "rejected": 0}
    for file in BAD_FILES:
        for number, data in enumerate(_mutants(file.read_bytes())):
            copy = tmp_path / f"{file.stem}_{number}.yaml"
            copy.write_bytes(data)
            try:
                load_pipeline(copy)
            except ManifestError as error:
                assert error.location is not None, f"{file.name} mutant {number}: {error}"
                assert error.location.path == str(copy)
                assert 1 <= error.location.line <= data.count(b"\n") + 2, f"{file.name} mutant {number}"
                outcomes["rejected"] += 1
            except Exception as exc:  # pragma: no cover - the failure being tested for
                pytest.fail(f"{file.name} mutant {number} raised {type(exc).__name__}: {exc}")
            else:
                outcomes["loaded"] += 1
    # Every corpus file itself is rejected; removing its faulty line repairs a good share of them.
    assert outcomes["rejected"] >= len(BAD_FILES)
    assert outcomes["loaded"] > 0


def test_database_error_does_not_show_the_password() -> None:
    with pytest.raises(ManifestError) as caught:
        load_pipeline(MANIFESTS / "bad_dirs" / "different_databases")
    assert "secret" not in str(caught.value)
    assert "postgresql" not in str(caught.value)
