"""Table definitions as text, in the shape of DataJoint's definitions (`-> Parent`, `---`)."""

from __future__ import annotations

from blobflow.model import Attribute, ForeignKey, Pipeline, Table


def describe_table(pipeline: Pipeline, table: Table) -> str:
    """The definition of a table and of its parts, e.g.

    # Blob detection results
    -> Image
    -> DetectionParams
    ---
    num_blobs            : int32          # number of blobs detected
    """
    lines = [f"# {table.description}"] if table.description else []
    lines.append(f"# {table.name}: {table.tier}" + (f", make {table.make.reference}" if table.make else ""))
    lines += _section(table, in_key=True)
    lines.append("---")
    lines += _section(table, in_key=False)
    text = "\n".join(lines)
    for part_name in table.parts:
        text += "\n\n" + describe_table(pipeline, pipeline.table(part_name))
    return text


def _section(table: Table, in_key: bool) -> list[str]:
    lines: list[str] = []
    shown_fks: set[int] = set()
    for attribute in table.attributes:
        if attribute.in_key != in_key:
            continue
        fk = _foreign_key_of(table, attribute, in_key)
        if fk is None:
            lines.append(_attribute_line(attribute))
        elif id(fk) not in shown_fks:
            shown_fks.add(id(fk))
            lines.append(_foreign_key_line(table, fk))
    # A reference whose attributes all sit in the key (e.g. SelectedDetection -> Detection shares image_id)
    # still deserves its line below the ---.
    if not in_key:
        for fk in table.foreign_keys:
            if not fk.in_key and id(fk) not in shown_fks:
                lines.append(_foreign_key_line(table, fk))
    return lines


def _foreign_key_of(table: Table, attribute: Attribute, in_key: bool) -> ForeignKey | None:
    for fk in table.foreign_keys:
        if fk.in_key == in_key and attribute.name in fk.attributes:
            return fk
    return None


def _foreign_key_line(table: Table, fk: ForeignKey) -> str:
    parent = fk.parent.split(".", 1)[1]
    if table.master and fk.parent == table.master:
        return "-> master"
    prefix = parent if fk.parent.split(".", 1)[0] == table.schema else fk.parent
    renames = [f"{child}={name!r}" for name, child in fk.columns if child != name]
    options = [word for word, on in (("nullable", fk.nullable), ("unique", fk.unique)) if on]
    text = "-> " + (f"[{', '.join(options)}] " if options else "") + prefix
    return text + (f".proj({', '.join(renames)})" if renames else "")


def _attribute_line(attribute: Attribute) -> str:
    declared = attribute.name
    if attribute.has_default and attribute.default is not None:
        declared += f" = {attribute.default!r}"
    elif attribute.nullable:
        declared += " = null"
    line = f"{declared:<20} : {attribute.type}"
    return f"{line:<40} # {attribute.comment}" if attribute.comment else line
