"""One manifest file -> table declarations: each table's own fields, checked in isolation.

Dependencies are kept as written (names, renames); `resolve.py` connects them across tables and files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from keyword import iskeyword
from typing import Any

from blobflow.errors import ManifestError, SourceLocation
from blobflow.manifest.fields import (
    SCHEMA_NAME,
    SQL_KEYWORDS,
    TABLE_NAME,
    as_list,
    check_attribute_name,
    check_keys,
    check_name,
    expect_bool,
    expect_list,
    expect_mapping,
    expect_string,
    fail,
    kind_of,
    parse_type,
    require,
)
from blobflow.manifest.yamlnodes import Located
from blobflow.model import TIERS, Attribute, AttributeType, View, snake_case
from blobflow.values import InvalidValue, convert_value

DOCUMENT_FIELDS = ("schema", "description", "database", "tables", "views")
TABLE_FIELDS = (
    "tier", "description", "key", "attributes", "depends", "references", "make", "parts", "contents",
    "indexes", "key_source",
)  # fmt: skip
PART_FIELDS = ("description", "key", "attributes", "depends", "references", "indexes")
ATTRIBUTE_FIELDS = ("type", "comment", "default", "nullable")
DEPENDENCY_FIELDS = ("table", "rename", "nullable", "unique")
MAKE_FIELDS = ("function", "inputs")


@dataclass
class DependencyDecl:
    target: str  # as written: "Image", "Detection.Blob" or "other_schema.Image"
    in_key: bool
    rename: dict[str, str]
    nullable: bool
    unique: bool
    node: Located
    rename_nodes: dict[str, Located] = field(default_factory=dict)  # parent attribute -> where it is named


@dataclass
class MakeDecl:
    reference: str
    inputs: dict[str, tuple[str, Located]]  # input name -> ("Table" or "Table.attr", where)
    node: Located  # the function reference: errors importing it point there


@dataclass
class TableDecl:
    name: str  # "Image" or "Detection.Blob"
    schema: str
    tier: str
    node: Located
    description: str = ""
    key: list[Attribute] = field(default_factory=list)
    attributes: list[Attribute] = field(default_factory=list)
    dependencies: list[DependencyDecl] = field(default_factory=list)
    make: MakeDecl | None = None
    master: str | None = None
    parts: list[TableDecl] = field(default_factory=list)
    contents: Located | None = None
    indexes: list[tuple[list[Located], Located]] = field(default_factory=list)  # (attribute names, index)
    key_source: str | None = None
    name_location: SourceLocation | None = None  # where the table is named: errors about the whole table


@dataclass
class Document:
    path: str
    schema: str
    description: str
    database: str | None
    tables: list[TableDecl]
    views: list[View]
    database_location: SourceLocation | None = None


def read_document(root: Located) -> Document:
    """Check one manifest file's structure and return its declarations."""
    top = expect_mapping(root, "a manifest")
    check_keys(root, DOCUMENT_FIELDS, "the manifest")
    schema_node = require(top, "schema", root, "the manifest")
    schema = check_name(schema_node.value, schema_node, "schema", SCHEMA_NAME, "tutorial_blobs")
    if schema in SQL_KEYWORDS:
        raise fail(f"schema name '{schema}' is an SQL keyword; choose another name", schema_node)
    tables_node = require(top, "tables", root, "the manifest")
    if not expect_mapping(tables_node, "'tables'"):
        raise fail("'tables' is empty; declare at least one table", tables_node)
    tables = [
        _read_table(name, node, schema, tables_node.key_locations[name], root)
        for name, node in tables_node.value.items()
    ]
    database = expect_string(top["database"], "'database'") if "database" in top else None
    description = expect_string(top["description"], "'description'") if "description" in top else ""
    views = _read_views(top["views"], root.location.path) if "views" in top else []
    database_location = top["database"].location if "database" in top else None
    return Document(root.location.path, schema, description, database, tables, views, database_location)


def _check_table_name(name: object, key_node: Located) -> str:
    check_name(name, key_node, "table", TABLE_NAME, "DetectionParams")
    if snake_case(str(name)) in SQL_KEYWORDS:
        raise fail(f"table name '{name}' becomes '{snake_case(str(name))}' in SQL, an SQL keyword", key_node)
    return str(name)


def _read_table(name: object, node: Located, schema: str, key_location, root: Located) -> TableDecl:
    key_node = Located(name, key_location)
    name = _check_table_name(name, key_node)
    body = expect_mapping(node, f"table '{name}'")
    check_keys(node, TABLE_FIELDS, f"table '{name}'")
    if "tier" not in body:
        raise fail(f"table '{name}' needs 'tier: {' | '.join(TIERS)}'", key_node)
    tier_node = body["tier"]
    tier = tier_node.value
    if tier not in TIERS:
        raise fail(f"unknown tier {tier!r} for table '{name}'; expected one of {', '.join(TIERS)}", tier_node)
    table = TableDecl(name, schema, tier, node, name_location=key_location)
    _read_body(table, body)
    derived = tier in ("computed", "imported")
    if "make" in body:
        if not derived:
            raise _misplaced(node, "make", f"only for computed and imported tables; '{name}' is {tier}")
        table.make = _read_make(body["make"], name)
    elif derived:
        raise fail(f"{tier} table '{name}' needs 'make: module:function'", key_node)
    if "contents" in body:
        if tier != "lookup":
            raise _misplaced(node, "contents", f"only for lookup tables; '{name}' is {tier}")
        table.contents = body["contents"]
        expect_list(body["contents"], "'contents'")
    if "key_source" in body:
        if not derived:
            raise _misplaced(node, "key_source", f"only for computed and imported tables; '{name}' is {tier}")
        table.key_source = expect_string(body["key_source"], "'key_source'")
    if "parts" in body:
        parts_node = body["parts"]
        for part_name, part_node in expect_mapping(parts_node, "'parts'").items():
            table.parts.append(
                _read_part(name, part_name, part_node, parts_node.key_locations[part_name], schema)
            )
    return table


def _misplaced(table_node: Located, field_name: str, why: str) -> ManifestError:
    return ManifestError(f"'{field_name}' is {why}", table_node.key_locations[field_name])


def _read_part(
    master: str, name: object, node: Located, key_location: SourceLocation, schema: str
) -> TableDecl:
    name = _check_table_name(name, Located(name, key_location))
    body = expect_mapping(node, f"part '{master}.{name}'") if node.value is not None else {}
    check_keys(node, PART_FIELDS, f"part '{master}.{name}'")
    part = TableDecl(f"{master}.{name}", schema, "part", node, master=master, name_location=key_location)
    _read_body(part, body)
    return part


def _read_body(table: TableDecl, body: dict[str, Located]) -> None:
    if "description" in body:
        table.description = expect_string(body["description"], "'description'")
    if "key" in body:
        table.key = _read_attributes(body["key"], in_key=True)
    if "attributes" in body:
        table.attributes = _read_attributes(body["attributes"], in_key=False)
    for field_name, in_key in (("depends", True), ("references", False)):
        if field_name in body:
            for item in as_list(body[field_name], f"'{field_name}'"):
                table.dependencies.append(_read_dependency(item, in_key))
    if "indexes" in body:
        for index in expect_list(body["indexes"], "'indexes'"):
            names = as_list(index, "an index")
            if not names:
                raise fail("an index needs at least one attribute, e.g. [image_name]", index)
            for name in names:
                expect_string(name, "an index attribute")
            table.indexes.append((names, index))


def _read_attributes(node: Located, in_key: bool) -> list[Attribute]:
    what = "'key'" if in_key else "'attributes'"
    if node.value is None:
        return []
    mapping = expect_mapping(node, what)
    return [_read_attribute(name, spec, node.key_locations[name], in_key) for name, spec in mapping.items()]


def _read_attribute(name: object, spec: Located, key_location: SourceLocation, in_key: bool) -> Attribute:
    name = check_attribute_name(name, Located(name, key_location))
    comment, default, has_default, nullable = "", None, False, False
    fields = spec.value if isinstance(spec.value, dict) else {}
    if isinstance(spec.value, dict):
        if "type" not in fields:
            check_keys(spec, ATTRIBUTE_FIELDS, f"attribute '{name}'")  # `typ:` gets a did-you-mean
        type_node = require(fields, "type", spec, f"attribute '{name}'")
        # Parsed before the other fields are checked: a comma in `{type: decimal(8,3)}` splits the
        # mapping, and the unclosed type explains that better than an unknown field '3)'.
        attribute_type = parse_type(type_node.value, type_node)
        check_keys(spec, ATTRIBUTE_FIELDS, f"attribute '{name}'")
        if "comment" in fields:
            comment = expect_string(fields["comment"], "'comment'")
        if "nullable" in fields:
            nullable = expect_bool(fields["nullable"], "'nullable'")
        if "default" in fields:
            has_default, default = True, _read_default(name, fields, attribute_type)
            nullable = nullable or default is None  # `default: null` makes the attribute optional
    elif spec.value is None:
        raise fail(f"attribute '{name}' needs a type, e.g. '{name}: int32'", Located(name, key_location))
    else:
        type_node = spec
        attribute_type = parse_type(spec.value, spec)
    if in_key:
        if has_default:
            raise fail(f"key attribute '{name}' cannot have a default", fields["default"])
        if nullable:
            raise fail(f"key attribute '{name}' cannot be nullable", fields["nullable"])
        if attribute_type.kind in ("blob", "json", "text"):
            raise fail(
                f"key attribute '{name}' cannot be of type {attribute_type.kind}; "
                "use an integer, varchar(n), char(n), date, uuid or enum",
                type_node,
            )
    return Attribute(
        name, attribute_type, in_key, nullable, default, has_default, comment, None, key_location
    )


def _read_default(name: str, fields: dict[str, Located], attribute_type: AttributeType) -> Any:
    default_node = fields["default"]
    if default_node.value is None:
        if "nullable" in fields and fields["nullable"].value is False:
            raise fail(f"'default: null' makes '{name}' nullable; drop 'nullable: false'", fields["nullable"])
        return None
    if attribute_type.kind in ("blob", "json"):
        raise fail(f"a {attribute_type.kind} attribute cannot have a default other than null", default_node)
    try:
        return convert_value(default_node.plain(), attribute_type)
    except InvalidValue as exc:
        raise fail(f"default of '{name}': {exc}", default_node) from None


def _read_dependency(node: Located, in_key: bool) -> DependencyDecl:
    if isinstance(node.value, str):
        return DependencyDecl(expect_string(node, "a dependency"), in_key, {}, False, False, node)
    if not isinstance(node.value, dict):
        raise fail(f"a dependency must be a table name or {{table: Name, ...}}, got {kind_of(node)}", node)
    spec = node.value
    check_keys(node, DEPENDENCY_FIELDS, "a dependency")
    target = expect_string(require(spec, "table", node, "a dependency"), "'table'")
    rename: dict[str, str] = {}
    rename_nodes: dict[str, Located] = {}
    if "rename" in spec:
        renames = spec["rename"]
        for old, new_node in expect_mapping(renames, "'rename'").items():
            new = check_attribute_name(new_node.value, new_node)
            if new in rename.values():
                raise fail(f"two attributes are renamed to '{new}'", new_node)
            rename[str(old)] = new
            rename_nodes[str(old)] = Located(old, renames.key_locations[old])
    nullable = expect_bool(spec["nullable"], "'nullable'") if "nullable" in spec else False
    unique = expect_bool(spec["unique"], "'unique'") if "unique" in spec else False
    if in_key and nullable:
        raise fail(
            "a 'depends' dependency is part of the primary key and cannot be nullable", spec["nullable"]
        )
    return DependencyDecl(target, in_key, rename, nullable, unique, node, rename_nodes)


def _read_make(node: Located, table: str) -> MakeDecl:
    if isinstance(node.value, str):
        return MakeDecl(_check_reference(node), {}, node)
    spec = expect_mapping(node, "'make'")
    check_keys(node, MAKE_FIELDS, "'make'")
    reference = _check_reference(require(spec, "function", node, "'make'"))
    inputs: dict[str, tuple[str, Located]] = {}
    if "inputs" in spec:
        for input_name, source in expect_mapping(spec["inputs"], "'inputs'").items():
            name_node = Located(input_name, spec["inputs"].key_locations[input_name])
            # Inputs are keyword arguments of the make function, not columns: Python's rules apply.
            if not isinstance(input_name, str) or not input_name.isidentifier() or iskeyword(input_name):
                raise fail(
                    f"invalid input name {input_name!r}; expected a Python name like 'image'", name_node
                )
            if input_name in ("key", "ctx"):
                raise fail(f"input name '{input_name}' is reserved for blobflow's own argument", name_node)
            inputs[input_name] = (expect_string(source, f"input '{input_name}'"), source)
    return MakeDecl(reference, inputs, spec["function"])


def _check_reference(node: Located) -> str:
    text = expect_string(node, "a function reference")
    module, _, function = text.partition(":")
    valid_module = all(part.isidentifier() for part in module.split("."))
    if not (module and function and valid_module and function.isidentifier()):
        raise fail(
            f"invalid function reference {text!r}; expected 'module:function', e.g. detect:detect_blobs", node
        )
    return text


def _read_views(node: Located, path: str) -> list[View]:
    views = []
    for name, spec in expect_mapping(node, "'views'").items():
        key_node = Located(name, node.key_locations[name])
        check_name(name, key_node, "view", SCHEMA_NAME, "blobs")
        description, function_node = "", spec
        if isinstance(spec.value, dict):
            check_keys(spec, ("function", "description"), f"view '{name}'")
            function_node = require(spec.value, "function", spec, f"view '{name}'")
            if "description" in spec.value:
                description = expect_string(spec.value["description"], "'description'")
        reference = _check_reference(function_node)
        module, _, function = reference.partition(":")
        views.append(View(str(name), module, function, description, function_node.location))
    return views
