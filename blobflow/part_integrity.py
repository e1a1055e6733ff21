"""Part -> master integrity on PostgreSQL: one set-based check per statement, not one per row.

A declared foreign key checks every inserted row on its own: an index probe and a row lock through
the server's SPI, about 3 µs a row, which was three quarters of the time to write a make's 100,000
part rows (docs/performance.md). Part rows are written only together with their master and come in
bulk, so on PostgreSQL the part -> master reference is enforced by statement-level triggers over
transition tables instead, with the same guarantees for transactions at READ COMMITTED (PostgreSQL's
default, and what blobflow uses):

- after an INSERT or UPDATE on the part, every distinct master key among the new rows must exist.
  Those master rows are locked FOR KEY SHARE, as a foreign key locks them, so a concurrent delete
  of the master waits for this transaction, then finds the part rows and fails;
- after a DELETE or UPDATE on the master, no part row may name a master key that is gone;
- after a TRUNCATE of the master, the part must be empty (or truncated in the same statement);
- under REPEATABLE READ or SERIALIZABLE, deleting or re-keying a master is refused: the older
  snapshot cannot see part rows another transaction committed meanwhile (a foreign key's check
  looks past the snapshot; a trigger cannot).

A violation raises SQLSTATE 23503 (foreign_key_violation), the error a foreign key raises, with
the offending key in its detail. The foreign key stays in the SQLAlchemy metadata (tables.py) and
is created as such on SQLite, where checking each row in-process is cheap. Every other foreign key
(a part's own `depends`, any table's parents) is declared as usual: those rows come one per key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import sqlalchemy as sa

from blobflow.model import Pipeline, Table

_MAX_IDENTIFIER = 63  # PostgreSQL truncates longer names; make them unique and short instead


def create_statements(
    pipeline: Pipeline, part: Table, sql_schema: Callable[[str], str], dialect: sa.Dialect
) -> list[str]:
    """The DDL enforcing `part`'s reference to its master, for a PostgreSQL database whose schemas
    are named by `sql_schema` (model schema -> SQL schema name). Run after both tables exist."""
    reference = part.master_reference
    assert reference is not None, part.name
    master = pipeline.table(reference.parent)
    quote = dialect.identifier_preparer.quote
    part_schema, master_schema = quote(sql_schema(part.schema)), quote(sql_schema(master.schema))
    part_sql = f"{part_schema}.{quote(part.sql_name)}"
    master_sql = f"{master_schema}.{quote(master.sql_name)}"
    part_columns = [child for _, child in reference.columns]
    master_columns = [parent for parent, _ in reference.columns]
    listed = ", ".join(quote(c) for c in part_columns)
    named = ", ".join(part_columns)  # as PostgreSQL lists them in a foreign key's message
    same_key = " AND ".join(f"m.{quote(p)} = r.{quote(c)}" for p, c in zip(master_columns, part_columns))
    key_text = ", ".join(f"r.{quote(c)}" for c in part_columns)
    check_part = f"{part_schema}.{quote(_identifier('_blobflow_master_exists__', part.sql_name))}"
    check_master = f"{part_schema}.{quote(_identifier('_blobflow_parts_orphaned__', part.sql_name))}"
    message_part = _literal(
        f'insert or update on table "{part.sql_name}" violates its reference to master "{master.sql_name}"'
    )
    message_master = _literal(
        f'update or delete on table "{master.sql_name}" leaves rows of its part "{part.sql_name}" '
        "without a master"
    )
    # Built by concatenation: a "%s" in the DDL would be taken for a parameter by the driver.
    key_is = _literal(f"Key ({named})=(")
    missing_detail = _literal(f') is not present in table "{master.sql_name}".')
    orphan_detail = _literal(f') is still referenced from table "{part.sql_name}".')
    truncate_detail = _literal(f'Table "{part.sql_name}" still has rows: truncate it with its master.')
    old_key_text = ", ".join(f"o.{quote(p)}" for p in master_columns)
    pairs = list(zip(master_columns, part_columns))
    part_names_old = " AND ".join(f"p.{quote(c)} = o.{quote(p)}" for p, c in pairs)
    master_has_old = " AND ".join(f"m.{quote(p)} = o.{quote(p)}" for p in master_columns)
    not_read_committed = _literal(
        f'deleting or re-keying rows of "{master.sql_name}", which has the part "{part.sql_name}", needs '
        "READ COMMITTED isolation: under an older snapshot, part rows committed meanwhile would go unseen"
    )
    part_body = f"""
DECLARE
    wanted bigint;
    locked bigint;
    missing text;
BEGIN
    -- One row per master key named, each master row locked as a foreign key would lock it.
    SELECT count(*), count(found.locked) INTO wanted, locked
    FROM (SELECT DISTINCT {listed} FROM new_rows) AS r
    LEFT JOIN LATERAL (
        SELECT true AS locked FROM {master_sql} AS m WHERE {same_key} FOR KEY SHARE OF m
    ) AS found ON true;
    IF locked < wanted THEN
        SELECT {key_is} || concat_ws(', ', {key_text}) || {missing_detail} INTO missing
        FROM new_rows AS r
        WHERE NOT EXISTS (SELECT FROM {master_sql} AS m WHERE {same_key})
        LIMIT 1;
        RAISE foreign_key_violation USING MESSAGE = {message_part}, DETAIL = coalesce(missing, '');
    END IF;
    RETURN NULL;
END
"""
    master_body = f"""
DECLARE
    orphan text;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_trigger WHERE tgfoid = to_regprocedure({_literal(check_part + "()")})) THEN
        RETURN NULL;  -- the part table was dropped by hand (a renamed one keeps its triggers: checked)
    END IF;
    -- A snapshot older than this statement (REPEATABLE READ, SERIALIZABLE) cannot see part rows that
    -- another transaction committed meanwhile; PostgreSQL's own foreign keys look past it, a trigger
    -- cannot. So a master row may go only under READ COMMITTED, as blobflow itself always runs.
    IF current_setting('transaction_isolation') NOT IN ('read committed', 'read uncommitted') THEN
        IF TG_OP = 'TRUNCATE' THEN
            RAISE object_not_in_prerequisite_state USING MESSAGE = {not_read_committed};
        END IF;
        IF EXISTS (
            SELECT FROM old_rows AS o WHERE NOT EXISTS (SELECT FROM {master_sql} AS m WHERE {master_has_old})
        ) THEN
            RAISE object_not_in_prerequisite_state USING MESSAGE = {not_read_committed};
        END IF;
    END IF;
    IF TG_OP = 'TRUNCATE' THEN
        IF EXISTS (SELECT FROM {part_sql}) THEN
            RAISE foreign_key_violation USING MESSAGE = {message_master}, DETAIL = {truncate_detail};
        END IF;
        RETURN NULL;
    END IF;
    -- A master key gone (deleted, or changed by an update) that part rows still name.
    SELECT {key_is} || concat_ws(', ', {old_key_text}) || {orphan_detail} INTO orphan
    FROM old_rows AS o
    WHERE EXISTS (SELECT FROM {part_sql} AS p WHERE {part_names_old})
      AND NOT EXISTS (SELECT FROM {master_sql} AS m WHERE {master_has_old})
    LIMIT 1;
    IF orphan IS NOT NULL THEN
        RAISE foreign_key_violation USING MESSAGE = {message_master}, DETAIL = orphan;
    END IF;
    RETURN NULL;
END
"""
    triggers = [
        # One trigger per event: PostgreSQL allows transition tables only on single-event triggers.
        *(
            (
                quote(f"blobflow_master_exists_{event.lower()}"),
                part_sql,
                f"AFTER {event} ON {part_sql} REFERENCING NEW TABLE AS new_rows "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {check_part}()",
            )
            for event in ("INSERT", "UPDATE")
        ),
        *(
            (
                quote(_identifier(f"blobflow_parts_{event.lower()}__", part.sql_name)),
                master_sql,
                f"AFTER {event} ON {master_sql} REFERENCING OLD TABLE AS old_rows "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {check_master}()",
            )
            for event in ("DELETE", "UPDATE")
        ),
        (
            quote(_identifier("blobflow_parts_truncate__", part.sql_name)),
            master_sql,
            f"AFTER TRUNCATE ON {master_sql} FOR EACH STATEMENT EXECUTE FUNCTION {check_master}()",
        ),
    ]
    # Replacing, not just creating: a part table dropped by hand and created again by `init` finds
    # the functions, and the master's triggers, still there.
    return [
        f"CREATE OR REPLACE FUNCTION {check_part}() RETURNS trigger LANGUAGE plpgsql AS "
        f"{_dollar_quoted(part_body)}",
        f"CREATE OR REPLACE FUNCTION {check_master}() RETURNS trigger LANGUAGE plpgsql AS "
        f"{_dollar_quoted(master_body)}",
        *(
            statement
            for name, on, rest in triggers
            for statement in (f"DROP TRIGGER IF EXISTS {name} ON {on}", f"CREATE TRIGGER {name} {rest}")
        ),
    ]


def _identifier(prefix: str, name: str) -> str:
    """prefix + name, shortened with a hash when PostgreSQL would truncate it."""
    full = prefix + name
    if len(full) <= _MAX_IDENTIFIER:
        return full
    digest = hashlib.sha1(full.encode()).hexdigest()[:10]
    return f"{full[: _MAX_IDENTIFIER - 11]}_{digest}"


def _literal(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _dollar_quoted(body: str) -> str:
    """The body as a dollar-quoted string, with a tag that does not occur in it (a schema name could
    hold `$blobflow$`)."""
    tag, number = "$blobflow$", 0
    while tag in body:
        number += 1
        tag = f"$blobflow{number}$"
    return f"{tag}{body}{tag}"
