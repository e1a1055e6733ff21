"""Declarations of all files -> the frozen Pipeline: names resolved, keys inherited, graph checked."""

from __future__ import annotations

import difflib
import graphlib
from collections.abc import Mapping
from dataclasses import replace as _replace
from typing import Any

from blobflow.errors import ManifestError, SourceLocation
from blobflow.manifest.declarations import DependencyDecl, Document, MakeDecl, TableDecl
from blobflow.manifest.fields import MAX_NAME_LENGTH, fail
from blobflow.manifest.yamlnodes import Located
from blobflow.model import Attribute, ForeignKey, Make, MakeInput, Pipeline, Table, View, sql_table_name
from blobflow.values import InvalidValue, convert_value


def build_pipeline(documents: list[Document], root: str) -> Pipeline:
    declarations = _collect(documents)
    schemas = tuple(dict.fromkeys(d.schema for d in documents))
    parents = {name: _parent_names(decl, declarations, schemas) for name, decl in declarations.items()}
    order = _topological_order(parents, declarations)
    tables: dict[str, Table] = {}
    for name in order:
        tables[name] = _build_table(declarations[name], tables, parents[name])
    for name in order:
        _check_make_inputs(declarations[name], tables)
    return Pipeline(
        tables=tables,
        schemas=schemas,
        sources=tuple(d.path for d in documents),
        root=root,
        database=_single_database(documents),
        description=next((d.description for d in documents if d.description), ""),
        views=_collect_views(documents),
    )


def _collect(documents: list[Document]) -> dict[str, TableDecl]:
    declarations: dict[str, TableDecl] = {}
    sql_names: dict[tuple[str, str], TableDecl] = {}
    for document in documents:
        for table in document.tables:
            for decl in (table, *table.parts):
                qualified = f"{decl.schema}.{decl.name}"
                if qualified in declarations:
                    first = _where(declarations[qualified])
                    message = f"table '{decl.name}' is declared twice (first at {first})"
                    raise ManifestError(message, _where(decl))
                _check_sql_name(decl, sql_names)
                declarations[qualified] = decl
    return declarations


def _check_sql_name(decl: TableDecl, sql_names: dict[tuple[str, str], TableDecl]) -> None:
    """Distinct names can meet in SQL (HTTPLog, HttpLog -> http_log): refuse before the database does."""
    sql_name = sql_table_name(decl.name)
    other = sql_names.setdefault((decl.schema, sql_name), decl)
    if other is not decl:
        raise ManifestError(
            f"tables '{other.name}' and '{decl.name}' would both be '{sql_name}' in SQL; rename one",
            _where(decl),
        )
    if len(sql_name) > MAX_NAME_LENGTH:
        raise ManifestError(
            f"table '{decl.name}' is '{sql_name}' in SQL, longer than {MAX_NAME_LENGTH} characters",
            _where(decl),
        )


def _where(decl: TableDecl) -> SourceLocation:
    """Where a table is named: errors about a table as a whole point there."""
    return decl.name_location or decl.node.location


def _resolve(
    target: str, schema: str, declarations: Mapping[str, TableDecl], schemas: tuple[str, ...], node: Located
) -> str:
    """A table name as written in a manifest -> its qualified name; unqualified names mean this schema."""
    head, _, rest = target.partition(".")
    candidates = [f"{schema}.{target}"]
    if head in schemas and rest:
        candidates.insert(0, target)
    for candidate in candidates:
        if candidate in declarations:
            return candidate
    raise fail(f"unknown table '{target}'; {_unknown_table_hint(target, schema, declarations)}", node)


def _unknown_table_hint(target: str, schema: str, declarations: Mapping[str, TableDecl]) -> str:
    local = [q.split(".", 1)[1] for q in declarations if q.startswith(f"{schema}.")]
    elsewhere = [q for q in declarations if q.split(".", 1)[1] == target]
    if elsewhere:
        return f"it is in another schema: write '{elsewhere[0]}'"
    parts = [name for name in local if name.endswith(f".{target}")]
    if parts:
        return f"a part is named with its master: did you mean '{parts[0]}'?"
    lowered = [name for name in local if name.lower() == target.lower()]
    if lowered:
        return f"names are case-sensitive: did you mean '{lowered[0]}'?"
    close = difflib.get_close_matches(target, local, n=1)
    if close:
        return f"did you mean '{close[0]}'?"
    return "expected one of: " + ", ".join(local)


def _parent_names(
    decl: TableDecl, declarations: Mapping[str, TableDecl], schemas: tuple[str, ...]
) -> list[str]:
    names = [f"{decl.schema}.{decl.master}"] if decl.master else []
    seen: list[tuple[str, dict[str, str]]] = []
    for dependency in decl.dependencies:
        parent = _resolve(dependency.target, decl.schema, declarations, schemas, dependency.node)
        if parent == f"{decl.schema}.{decl.name}":
            raise fail(f"table '{decl.name}' depends on itself", dependency.node)
        if declarations[parent].master == decl.name and declarations[parent].schema == decl.schema:
            raise fail(
                f"table '{decl.name}' cannot depend on its own part '{dependency.target}'", dependency.node
            )
        if decl.master and parent == names[0] and not dependency.rename:
            raise fail(
                f"part '{decl.name}' already depends on its master '{decl.master}'; remove this dependency",
                dependency.node,
            )
        if (parent, dependency.rename) in seen:
            raise fail(
                f"table '{decl.name}' depends on '{dependency.target}' twice; "
                "give the second dependency a 'rename'",
                dependency.node,
            )
        seen.append((parent, dependency.rename))
        names.append(parent)
    return names


def _topological_order(parents: dict[str, list[str]], declarations: Mapping[str, TableDecl]) -> list[str]:
    sorter = graphlib.TopologicalSorter({name: list(dict.fromkeys(p)) for name, p in parents.items()})
    try:
        return list(sorter.static_order())
    except graphlib.CycleError as exc:
        raise _cycle_error(exc.args[1], parents, declarations) from None


def _cycle_error(
    cycle: list[str], parents: dict[str, list[str]], declarations: Mapping[str, TableDecl]
) -> ManifestError:
    """Report a cycle from the first-declared table on it, pointing at that table's dependency that
    leads into the cycle. graphlib lists each table before the tables that depend on it."""
    path = list(reversed(cycle[1:]))  # each table depends on the next one (cyclically)
    order = list(declarations)
    start = min(range(len(path)), key=lambda i: order.index(path[i]))
    path = path[start:] + path[:start]
    schemas = {name.split(".", 1)[0] for name in path}
    shown = [name if len(schemas) > 1 else name.split(".", 1)[1] for name in [*path, path[0]]]
    names = " -> ".join(shown)
    first, parent = declarations[path[0]], path[1 % len(path)]
    own = parents[path[0]][1:] if first.master else parents[path[0]]
    location = next(
        (d.node.location for d, p in zip(first.dependencies, own) if p == parent),
        _where(first),  # the edge is the implicit one from a part to its master
    )
    return ManifestError(f"dependency cycle: {names}", location)


def _build_table(decl: TableDecl, tables: Mapping[str, Table], parent_names: list[str]) -> Table:
    builder = _AttributeBuilder(decl.name)
    foreign_keys: list[ForeignKey] = []
    parents = iter(parent_names)
    if decl.master:
        master = tables[next(parents)]
        foreign_keys.append(builder.inherit(master, _implicit(master, decl), in_key=True))
    dependencies = list(zip(decl.dependencies, parents))
    for dependency, parent in dependencies:
        if dependency.in_key:
            foreign_keys.append(builder.inherit(tables[parent], dependency, in_key=True))
    for attribute in decl.key:
        builder.add_own(attribute)
    for dependency, parent in dependencies:
        if not dependency.in_key:
            foreign_keys.append(builder.inherit(tables[parent], dependency, in_key=False))
    for attribute in decl.attributes:
        builder.add_own(attribute)
    attributes = builder.ordered()
    if not any(a.in_key for a in attributes):
        raise ManifestError(
            f"table '{decl.name}' has no primary key; declare 'key' or 'depends'", _where(decl)
        )
    table = Table(
        name=decl.name,
        schema=decl.schema,
        tier=decl.tier,
        attributes=attributes,
        foreign_keys=tuple(foreign_keys),
        indexes=tuple(_check_index(decl, names, node, attributes) for names, node in decl.indexes),
        description=decl.description,
        master=f"{decl.schema}.{decl.master}" if decl.master else None,
        parts=tuple(f"{decl.schema}.{part.name}" for part in decl.parts),
        make=_make_without_inputs(decl.make),
        key_source=decl.key_source,
        location=_where(decl),
    )
    if decl.contents is not None:
        table = _with_contents(table, decl.contents)
    return table


def _implicit(master: Table, decl: TableDecl) -> DependencyDecl:
    return DependencyDecl(master.name, True, {}, False, False, Located(master.name, _where(decl)))


class _AttributeBuilder:
    """Collects a table's attributes: inherited ones may repeat (same name, same type), own ones may not."""

    def __init__(self, table: str):
        self.table = table
        self.attributes: dict[str, Attribute] = {}

    def inherit(self, parent: Table, dependency: DependencyDecl, in_key: bool) -> ForeignKey:
        for old in dependency.rename:
            if old not in parent.primary_key:
                raise fail(
                    f"cannot rename '{old}': not in {parent.name}'s primary key "
                    f"({', '.join(parent.primary_key)})",
                    dependency.rename_nodes.get(old, dependency.node),
                )
        columns = []
        names = [dependency.rename.get(p, p) for p in parent.primary_key]
        for parent_name, name in zip(parent.primary_key, names):
            if names.count(name) > 1:
                raise fail(
                    f"the dependency on {parent.name} would give '{self.table}' attribute '{name}' twice; "
                    "rename it to another name",
                    dependency.rename_nodes.get(parent_name, dependency.node),
                )
            source = parent.attribute(parent_name)
            attribute = Attribute(
                name,
                source.type,
                in_key,
                dependency.nullable,
                None,
                False,
                source.comment,
                parent.qualified_name,
                dependency.node.location,
            )
            existing = self.attributes.get(name)
            if existing is None:
                self.attributes[name] = attribute
            elif existing.inherited_from is None:
                raise fail(
                    f"attribute '{name}' of '{self.table}' is declared and also comes from {parent.name}",
                    dependency.node,
                )
            elif existing.type != attribute.type:
                raise fail(
                    f"attribute '{name}' comes from two parents with different types "
                    f"({existing.type} and {attribute.type})",
                    dependency.node,
                )
            columns.append((parent_name, name))
        return ForeignKey(
            parent.qualified_name,
            tuple(columns),
            in_key,
            dependency.nullable,
            dependency.unique,
            dependency.node.location,
        )

    def add_own(self, attribute: Attribute) -> None:
        existing = self.attributes.get(attribute.name)
        if existing is not None:
            origin = (
                f"comes from {existing.inherited_from.split('.', 1)[1]}"
                if existing.inherited_from
                else "is declared twice"
            )
            raise ManifestError(
                f"duplicate attribute '{attribute.name}' in '{self.table}': it {origin}", attribute.location
            )
        self.attributes[attribute.name] = attribute

    def ordered(self) -> tuple[Attribute, ...]:
        values = list(self.attributes.values())
        return tuple([a for a in values if a.in_key] + [a for a in values if not a.in_key])


def _check_index(
    decl: TableDecl, name_nodes: list[Located], node: Located, attributes: tuple[Attribute, ...]
) -> tuple[str, ...]:
    known = [a.name for a in attributes]
    names: list[str] = []
    for name_node in name_nodes:
        name = name_node.value.strip()
        if name not in known:
            raise fail(
                f"index on unknown attribute '{name}' of '{decl.name}'; expected one of {', '.join(known)}",
                name_node,
            )
        if name in names:
            raise fail(f"an index lists attribute '{name}' twice", name_node)
        names.append(name)
    return tuple(names)


def _with_contents(table: Table, contents: Located) -> Table:
    rows: list[dict[str, Any]] = []
    seen: dict[tuple, int] = {}
    for number, row_node in enumerate(contents.value, start=1):
        if not isinstance(row_node.value, dict):
            raise fail(
                f"contents row {number} of '{table.name}' must be a mapping of attribute values", row_node
            )
        row = _check_contents_row(table, row_node, number)
        key = tuple(row[k] for k in table.primary_key)
        if key in seen:
            raise fail(f"contents row {number} repeats the key of row {seen[key]}", row_node)
        seen[key] = number
        rows.append(row)
    return _replace(table, contents=tuple(rows))


def _check_contents_row(table: Table, row_node: Located, number: int) -> dict[str, Any]:
    values = row_node.value
    for name, location in row_node.key_locations.items():
        if not table.has_attribute(str(name)):
            raise ManifestError(
                f"contents row {number}: '{name}' is not an attribute of '{table.name}'", location
            )
    row = {}
    for attribute in table.attributes:
        if attribute.name not in values:
            if attribute.in_key:
                raise fail(f"contents row {number} lacks key attribute '{attribute.name}'", row_node)
            if not (attribute.nullable or attribute.has_default):
                raise fail(f"contents row {number} lacks required attribute '{attribute.name}'", row_node)
            continue
        value_node = values[attribute.name]
        if value_node.value is None:
            if not attribute.nullable:
                raise fail(f"contents row {number}: '{attribute.name}' cannot be null", value_node)
            row[attribute.name] = None
            continue
        try:
            row[attribute.name] = convert_value(value_node.plain(), attribute.type)
        except InvalidValue as exc:
            raise fail(f"contents row {number}, attribute '{attribute.name}': {exc}", value_node) from None
    return row


def _make_without_inputs(decl: MakeDecl | None) -> Make | None:
    if decl is None:
        return None
    module, _, function = decl.reference.partition(":")
    return Make(module, function, (), decl.node.location)


def _check_make_inputs(decl: TableDecl, tables: dict[str, Table]) -> None:
    """Each input names a table whose key is within ours (so one row matches), or one attribute of it."""
    if decl.make is None or not decl.make.inputs:
        return
    table = tables[f"{decl.schema}.{decl.name}"]
    inputs = []
    for name, (source, node) in decl.make.inputs.items():
        parent, attribute = _split_input(source, decl.schema, tables, node)
        if parent.qualified_name == table.qualified_name:
            raise fail(f"input '{name}': a table cannot be an input of its own make", node)
        missing = [k for k in parent.primary_key if k not in table.primary_key]
        if missing:
            raise fail(
                f"input '{name}': {parent.name} has key attributes ({', '.join(missing)}) that are not in "
                f"{table.name}'s key, so no single row matches a key",
                node,
            )
        inputs.append(MakeInput(name, parent.qualified_name, attribute))
    tables[table.qualified_name] = _replace(table, make=_replace(table.make, inputs=tuple(inputs)))


def _split_input(
    source: str, schema: str, tables: Mapping[str, Table], node: Located
) -> tuple[Table, str | None]:
    pieces = source.split(".")
    for cut in range(len(pieces), 0, -1):
        name, attribute = ".".join(pieces[:cut]), ".".join(pieces[cut:]) or None
        for qualified in (f"{schema}.{name}", name):
            if qualified in tables:
                parent = tables[qualified]
                if attribute is not None and not parent.has_attribute(attribute):
                    raise fail(f"input '{source}': '{attribute}' is not an attribute of {parent.name}", node)
                return parent, attribute
    raise fail(
        f"input '{source}' names no table of the pipeline; expected 'Table' or 'Table.attribute'", node
    )


def _single_database(documents: list[Document]) -> str | None:
    named = [d for d in documents if d.database]
    for document in named[1:]:
        if document.database != named[0].database:
            # Name the files, not the URLs: a URL may hold a password.
            raise ManifestError(
                f"'database' differs from the one in {named[0].path}; "
                "name the database in one manifest file only",
                document.database_location,
            )
    return named[0].database if named else None


def _collect_views(documents: list[Document]) -> dict[str, View]:
    views: dict[str, View] = {}
    for document in documents:
        for view in document.views:
            if view.name in views:
                raise ManifestError(f"view '{view.name}' is declared twice", view.location)
            views[view.name] = view
    return views
