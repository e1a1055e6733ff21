"""One manifest file -> table declarations: each table's own fields, checked in isolation.

Dependencies are kept as written (names, renames); `resolve.py` connects them across tables and files.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
    parse_type,
    require,
)
from blobflow.manifest.yamlnodes import Located
from blobflow.model import TIERS, Attribute, View, snake_case
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


@dataclass
class MakeDecl:
    reference: str
    inputs: dict[str, tuple[str, Located]]  # input name -> ("Table" or "Table.attr", where)
    node: Located


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
    indexes: list[tuple[list[str], Located]] = field(default_factory=list)
    key_source: str | None = None


@dataclass
class Document:
    path: str
    schema: str
    description: str
    database: str | None
    tables: list[TableDecl]
    views: list[View]


def read_document(root: Located) -> Document:
    """Check one manifest file's structure and return its declarations."""
    top = expect_mapping(root, "a manifest")
    check_keys(root, DOCUMENT_FIELDS, "the manifest")
    schema_node = require(top, "schema", root, "the manifest")
    schema = check_name(schema_node.value, schema_node, "schema", SCHEMA_NAME, "tutorial_blobs")
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
    return Document(root.location.path, schema, description, database, tables, views)


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
    tier_node = require(body, "tier", node, f"table '{name}'")
    tier = tier_node.value
    if tier not in TIERS:
        raise fail(f"unknown tier {tier!r} for table '{name}'; expected one of {', '.join(TIERS)}", tier_node)
    table = TableDecl(name, schema, tier, node)
    _read_body(table, body)
    if "make" in body:
        if tier not in ("computed", "imported"):
            raise fail(f"'make' is only for computed and imported tables; '{name}' is {tier}", body["make"])
        table.make = _read_make(body["make"], name)
    elif tier in ("computed", "imported"):
        raise fail(f"{tier} table '{name}' needs 'make: module:function'", node)
    if "contents" in body:
        if tier != "lookup":
            raise fail(f"'contents' is only for lookup tables; '{name}' is {tier}", body["contents"])
        table.contents = body["contents"]
        expect_list(body["contents"], "'contents'")
    if "key_source" in body:
        if tier not in ("computed", "imported"):
            raise fail("'key_source' is only for computed and imported tables", body["key_source"])
        table.key_source = expect_string(body["key_source"], "'key_source'")
    if "parts" in body:
        parts_node = body["parts"]
        for part_name, part_node in expect_mapping(parts_node, "'parts'").items():
            part_key = Located(part_name, parts_node.key_locations[part_name])
            part_name = _check_table_name(part_name, part_key)
            check_keys(part_node, PART_FIELDS, f"part '{name}.{part_name}'")
            part = TableDecl(f"{name}.{part_name}", schema, "part", part_node, master=name)
            _read_body(part, expect_mapping(part_node, f"part '{part_name}'"))
            table.parts.append(part)
    return table


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
            names = [expect_string(n, "an index attribute") for n in as_list(index, "an index")]
            table.indexes.append((names, index))


def _read_attributes(node: Located, in_key: bool) -> list[Attribute]:
    what = "'key'" if in_key else "'attributes'"
    if node.value is None:
        return []
    mapping = expect_mapping(node, what)
    return [_read_attribute(name, spec, node.key_locations[name], in_key) for name, spec in mapping.items()]


def _read_attribute(name: object, spec: Located, key_location, in_key: bool) -> Attribute:
    name = check_attribute_name(name, Located(name, key_location))
    comment, default, has_default, nullable = "", None, False, False
    if isinstance(spec.value, dict):
        check_keys(spec, ATTRIBUTE_FIELDS, f"attribute '{name}'")
        type_node = require(spec.value, "type", spec, f"attribute '{name}'")
        attribute_type = parse_type(type_node.value, type_node)
        if "comment" in spec.value:
            comment = expect_string(spec.value["comment"], "'comment'")
        if "nullable" in spec.value:
            nullable = expect_bool(spec.value["nullable"], "'nullable'")
        if "default" in spec.value:
            has_default, default_node = True, spec.value["default"]
            default = default_node.value
            if default is None:
                nullable = True  # `default: null` makes the attribute optional
            else:
                try:
                    default = convert_value(default, attribute_type)
                except InvalidValue as exc:
                    raise fail(f"default of '{name}': {exc}", default_node) from None
                if attribute_type.kind in ("blob", "json"):
                    raise fail(f"a {attribute_type.kind} attribute cannot have a default", default_node)
    else:
        attribute_type = parse_type(spec.value, spec)
    if in_key and (nullable or has_default):
        raise fail(f"key attribute '{name}' cannot be nullable or have a default", spec)
    if in_key and attribute_type.kind in ("blob", "json", "text"):
        raise fail(f"key attribute '{name}' cannot be of type {attribute_type.kind}", spec)
    return Attribute(
        name, attribute_type, in_key, nullable, default, has_default, comment, None, spec.location
    )


def _read_dependency(node: Located, in_key: bool) -> DependencyDecl:
    if isinstance(node.value, str):
        return DependencyDecl(expect_string(node, "a dependency"), in_key, {}, False, False, node)
    spec = expect_mapping(node, "a dependency")
    check_keys(node, DEPENDENCY_FIELDS, "a dependency")
    target = expect_string(require(spec, "table", node, "a dependency"), "'table'")
    rename: dict[str, str] = {}
    if "rename" in spec:
        for old, new_node in expect_mapping(spec["rename"], "'rename'").items():
            rename[str(old)] = check_attribute_name(new_node.value, new_node)
    nullable = expect_bool(spec["nullable"], "'nullable'") if "nullable" in spec else False
    unique = expect_bool(spec["unique"], "'unique'") if "unique" in spec else False
    if in_key and nullable:
        raise fail(
            "a 'depends' dependency is part of the primary key and cannot be nullable", spec["nullable"]
        )
    return DependencyDecl(target, in_key, rename, nullable, unique, node)


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
            check_attribute_name(input_name, name_node)
            if input_name in ("key", "ctx"):
                raise fail(f"input name '{input_name}' is reserved for blobflow's own argument", name_node)
            inputs[input_name] = (expect_string(source, f"input '{input_name}'"), source)
    return MakeDecl(reference, inputs, node)


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
        description = ""
        if isinstance(spec.value, dict):
            check_keys(spec, ("function", "description"), f"view '{name}'")
            reference = _check_reference(require(spec.value, "function", spec, f"view '{name}'"))
            if "description" in spec.value:
                description = expect_string(spec.value["description"], "'description'")
        else:
            reference = _check_reference(spec)
        module, _, function = reference.partition(":")
        views.append(View(str(name), module, function, description, spec.location))
    return views
