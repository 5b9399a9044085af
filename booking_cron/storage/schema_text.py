"""`db schema`: booking-cron's schema as readable SQL, from the catalog.

booking_cron/schema.sql is this text for an empty database after `db upgrade` (checked in; the test
tests/test_schema_file.py fails when it is out of date). Made from catalog queries, not pg_dump,
so that it reads the same on every PostgreSQL version booking-cron runs on (15 to 18): every list
is sorted, role names that depend on the installation (the database owner) are left out, and
what a version adds on its own (PostgreSQL 18's not-null constraints in pg_constraint, 17's
MAINTAIN privilege) is not shown.

What is shown: booking-cron's tables in `public` (the app's tables that migration 0001 creates
where they are missing, and its own) and everything in schema `booking_cron`: columns with types
and defaults, constraints, indexes, row-level security and policies, triggers, grants; then the
functions with their full bodies. The migration tool's own tables (_yoyo_*, yoyo_lock) are not.
"""

from __future__ import annotations

import re

import psycopg

from booking_cron.storage.schema import CREATED_TABLES, FUNCTIONS

SCHEMAS = ("public", "booking_cron")
TABLES = tuple(t for t in CREATED_TABLES if not (t.startswith("_yoyo") or t.startswith("yoyo")))

HEADER = """\
-- booking-cron's schema: what `booking-cron db upgrade` creates in an empty database, on a server that
-- has Supabase's API roles (anon, authenticated, service_role) but not Supabase's default privileges.
-- Generated from the catalog by `make schema` (`booking-cron db schema` prints it for the database it
-- is wired to); do not edit by hand. Owners are not shown (everything belongs to the database owner),
-- nor the privileges an owner has on what it owns.
"""

# Tables (and partitioned tables) that are booking-cron's: the listed ones in public, all in booking_cron.
OWN_TABLES = """
select c.oid, n.nspname, c.relname, c.relrowsecurity, c.relforcerowsecurity,
       pg_catalog.obj_description(c.oid, 'pg_class')
from pg_catalog.pg_class c
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
where c.relkind in ('r', 'p')
  and ((n.nspname = 'public' and c.relname = any(%(tables)s)) or n.nspname = 'booking_cron')
order by n.nspname <> 'public', n.nspname, c.relname
"""

COLUMNS = """
select a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull,
       pg_catalog.pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated,
       pg_catalog.col_description(a.attrelid, a.attnum)
from pg_catalog.pg_attribute a
left join pg_catalog.pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
where a.attrelid = %s and a.attnum > 0 and not a.attisdropped
order by a.attnum
"""

# contype 'n' (not null) is PostgreSQL 18's: the columns say `not null` already.
CONSTRAINTS = """
select c.conname, pg_catalog.pg_get_constraintdef(c.oid, true)
from pg_catalog.pg_constraint c
where c.conrelid = %s and c.contype in ('p', 'u', 'f', 'c', 'x')
order by case c.contype when 'p' then 0 when 'u' then 1 when 'x' then 2 when 'c' then 3 else 4 end, c.conname
"""

# Indexes that no constraint makes.
INDEXES = """
select pg_catalog.pg_get_indexdef(i.indexrelid)
from pg_catalog.pg_index i
join pg_catalog.pg_class ic on ic.oid = i.indexrelid
where i.indrelid = %s
  and not exists (select 1 from pg_catalog.pg_constraint c where c.conindid = i.indexrelid and c.conrelid = i.indrelid)
order by ic.relname
"""

POLICIES = """
select p.polname, p.polpermissive, p.polcmd,
       array(select case r when 0 then 'public' else pg_catalog.pg_get_userbyid(r)::text end
             from unnest(p.polroles) r),
       pg_catalog.pg_get_expr(p.polqual, p.polrelid), pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid)
from pg_catalog.pg_policy p
where p.polrelid = %s
order by p.polname
"""

TRIGGERS = """
select t.tgname, pg_catalog.pg_get_triggerdef(t.oid, true), t.tgenabled
from pg_catalog.pg_trigger t
where t.tgrelid = %s and not t.tgisinternal
order by t.tgname
"""

# Privileges granted to others than the object's owner (acldefault: what an object without an ACL
# grants). MAINTAIN is PostgreSQL 17's, and only ever the owner's here.
RELATION_GRANTS = """
select case a.grantee when 0 then 'public' else pg_catalog.pg_get_userbyid(a.grantee)::text end,
       a.privilege_type, a.is_grantable
from pg_catalog.pg_class c,
     aclexplode(coalesce(c.relacl, pg_catalog.acldefault('r', c.relowner))) a
where c.oid = %(oid)s and a.grantee <> c.relowner and a.privilege_type <> 'MAINTAIN'
"""

COLUMN_GRANTS = """
select case a.grantee when 0 then 'public' else pg_catalog.pg_get_userbyid(a.grantee)::text end,
       a.privilege_type, a.is_grantable, att.attname
from pg_catalog.pg_attribute att
join pg_catalog.pg_class c on c.oid = att.attrelid,
     aclexplode(att.attacl) a
where att.attrelid = %(oid)s and att.attnum > 0 and not att.attisdropped and a.grantee <> c.relowner
order by att.attnum
"""

SCHEMA_GRANTS = """
select case a.grantee when 0 then 'public' else pg_catalog.pg_get_userbyid(a.grantee)::text end,
       a.privilege_type, a.is_grantable
from pg_catalog.pg_namespace n,
     aclexplode(coalesce(n.nspacl, pg_catalog.acldefault('n', n.nspowner))) a
where n.nspname = %(name)s and a.grantee <> n.nspowner
"""

# booking-cron's functions: the listed ones and the booking_cron_* helpers in public, all in booking_cron.
# Those of extensions are not.
OWN_FUNCTIONS = r"""
select p.oid, p.oid::regprocedure::text, pg_catalog.pg_get_functiondef(p.oid), p.prokind,
       pg_catalog.obj_description(p.oid, 'pg_proc')
from pg_catalog.pg_proc p
join pg_catalog.pg_namespace n on n.oid = p.pronamespace
where ((n.nspname = 'public' and (p.proname = any(%(functions)s) or p.proname like 'booking\_cron\_%%'))
       or n.nspname = 'booking_cron')
  and not exists (select 1 from pg_catalog.pg_depend d
                  where d.classid = 'pg_catalog.pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e')
order by n.nspname <> 'public', n.nspname, p.proname, p.oid::regprocedure::text collate "C"
"""

FUNCTION_GRANTS = """
select case a.grantee when 0 then 'public' else pg_catalog.pg_get_userbyid(a.grantee)::text end,
       a.privilege_type, a.is_grantable
from pg_catalog.pg_proc p,
     aclexplode(coalesce(p.proacl, pg_catalog.acldefault('f', p.proowner))) a
where p.oid = %(oid)s and a.grantee <> p.proowner
"""

# Sequences, views and types in booking_cron's schema that no table or column owns (none so far):
# listed by name so that one added later is not missed silently.
OTHER_OBJECTS = r"""
select case c.relkind when 'S' then 'sequence' when 'v' then 'view' when 'm' then 'materialized view'
                      else 'relation ' || c.relkind::text end || ' ' || c.oid::regclass::text
from pg_catalog.pg_class c
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
where n.nspname = 'booking_cron' and c.relkind in ('S', 'v', 'm', 'f')
  and not exists (select 1 from pg_catalog.pg_depend d
                  where d.classid = 'pg_catalog.pg_class'::regclass and d.objid = c.oid and d.deptype in ('a', 'i'))
union all
select 'type ' || t.oid::regtype::text
from pg_catalog.pg_type t
join pg_catalog.pg_namespace n on n.oid = t.typnamespace
where n.nspname = 'booking_cron' and t.typtype in ('e', 'd', 'r', 'm')
   or (n.nspname = 'booking_cron' and t.typtype = 'c'
       and (select c.relkind from pg_catalog.pg_class c where c.oid = t.typrelid) = 'c')
"""

# PostgreSQL's privilege names in the order GRANT lists them.
PRIVILEGE_ORDER = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER",
                   "USAGE", "CREATE", "EXECUTE", "TEMPORARY", "CONNECT")
COMMANDS = {"r": "select", "a": "insert", "w": "update", "d": "delete", "*": "all"}


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _grants(rows, on: str) -> list[str]:
    """`grant ... on <on> to ...;` lines, one per grantee (and grant option), privileges in GRANT's order.
    A function's EXECUTE that PUBLIC does not have is shown as its revoke."""
    by_grantee: dict[tuple[str, bool], set[str]] = {}
    for grantee, privilege, grantable in rows:
        by_grantee.setdefault((grantee, grantable), set()).add(privilege)
    lines = []
    for (grantee, grantable), privileges in sorted(by_grantee.items()):
        listed = ", ".join(p.lower() for p in sorted(privileges, key=PRIVILEGE_ORDER.index))
        option = " with grant option" if grantable else ""
        lines.append(f"grant {listed} on {on} to {_ident(grantee)}{option};")
    return lines


def _column_grants(rows, on: str) -> list[str]:
    by_grant: dict[tuple[str, str, bool], list[str]] = {}
    for grantee, privilege, grantable, column in rows:
        by_grant.setdefault((grantee, privilege, grantable), []).append(_ident(column))
    lines = []
    def order(grant):
        (grantee, privilege, grantable), _ = grant
        return grantee, PRIVILEGE_ORDER.index(privilege), grantable

    for (grantee, privilege, grantable), columns in sorted(by_grant.items(), key=order):
        option = " with grant option" if grantable else ""
        lines.append(f"grant {privilege.lower()} ({', '.join(columns)}) on {on} to {_ident(grantee)}{option};")
    return lines


# Names are quoted only where SQL needs it: anything but lower-case letters, digits and _, or one of
# PostgreSQL's reserved words (the fixed list keeps the text the same on every server version).
_PLAIN = re.compile(r"[a-z_][a-z0-9_$]*")
_RESERVED = frozenset("""all analyse analyze and any array as asc asymmetric both case cast check collate column
constraint create current_catalog current_date current_role current_time current_timestamp current_user default
deferrable desc distinct do else end except false fetch for foreign from grant group having in initially intersect
into lateral leading limit localtime localtimestamp not null offset on only or order placing primary references
returning select session_user some symmetric system_user table then to trailing true union unique user using
variadic when where window with""".split())


def _ident(name: str) -> str:
    if _PLAIN.fullmatch(name) and name not in _RESERVED:
        return name
    return '"' + name.replace('"', '""') + '"'


def _table(conn: psycopg.Connection, oid: int, schema: str, name: str, rls: bool, force_rls: bool,
           comment: str | None) -> list[str]:
    qualified = f"{_ident(schema)}.{_ident(name)}"
    lines = [f"-- table {qualified}", f"create table {qualified} ("]
    parts = []
    column_comments = []
    for col, type_, notnull, default, identity, generated, col_comment in conn.execute(COLUMNS, (oid,)):
        part = f"    {_ident(col)} {type_}"
        if generated == "s":
            part += f" generated always as ({default}) stored"
        elif identity:
            part += " generated " + ("always" if identity == "a" else "by default") + " as identity"
        elif default is not None:
            part += f" default {default}"
        if notnull:
            part += " not null"
        parts.append(part)
        if col_comment:
            column_comments.append(f"comment on column {qualified}.{_ident(col)} is {_literal(col_comment)};")
    for conname, definition in conn.execute(CONSTRAINTS, (oid,)):
        parts.append(f"    constraint {_ident(conname)} {definition}")
    lines.append(",\n".join(parts))
    lines.append(");")
    if comment:
        lines.append(f"comment on table {qualified} is {_literal(comment)};")
    lines.extend(column_comments)
    lines.extend(f"{definition};" for (definition,) in conn.execute(INDEXES, (oid,)))
    if rls:
        lines.append(f"alter table {qualified} enable row level security;")
    if force_rls:
        lines.append(f"alter table {qualified} force row level security;")
    for polname, permissive, cmd, roles, qual, check in conn.execute(POLICIES, (oid,)):
        policy = (f"create policy {_ident(polname)} on {qualified} as {'permissive' if permissive else 'restrictive'}"
                  f" for {COMMANDS[cmd]} to {', '.join(map(_ident, sorted(roles)))}")
        if qual is not None:
            policy += f" using ({qual})"
        if check is not None:
            policy += f" with check ({check})"
        lines.append(policy + ";")
    for tgname, definition, enabled in conn.execute(TRIGGERS, (oid,)):
        lines.append(f"{definition};")
        if enabled != "O":
            state = {"D": "disable", "R": "enable replica", "A": "enable always"}[enabled]
            lines.append(f"alter table {qualified} {state} trigger {_ident(tgname)};")
    lines.extend(_grants(conn.execute(RELATION_GRANTS, {"oid": oid}).fetchall(), qualified))
    lines.extend(_column_grants(conn.execute(COLUMN_GRANTS, {"oid": oid}).fetchall(), qualified))
    return lines


def _function(conn: psycopg.Connection, oid: int, signature: str, definition: str, kind: str,
              comment: str | None) -> list[str]:
    word = "procedure" if kind == "p" else "function"
    lines = [f"-- {word} {signature}", definition.rstrip("\n") + ";"]
    if comment:
        lines.append(f"comment on {word} {signature} is {_literal(comment)};")
    rows = conn.execute(FUNCTION_GRANTS, {"oid": oid}).fetchall()
    if not any(grantee == "public" for grantee, _, _ in rows):
        lines.append(f"revoke execute on {word} {signature} from public;")
    lines.extend(_grants([row for row in rows if row[0] != "public"], f"{word} {signature}"))
    return lines


def schema_text(conn: psycopg.Connection) -> str:
    """booking-cron's schema in the database of `conn`, as SQL text (deterministic). Runs in a
    transaction of its own with an empty search_path, so that every name the catalog's functions
    print is schema-qualified (except pg_catalog's), whatever the role's search_path."""
    with conn.transaction():
        conn.execute("select pg_catalog.set_config('search_path', '', true)")
        return _schema_text(conn)


def _schema_text(conn: psycopg.Connection) -> str:
    blocks: list[list[str]] = []
    for name in SCHEMAS:
        block = [f"-- schema {name}"]
        if name != "public":
            block.append(f"create schema {_ident(name)};")
        block.extend(_grants(conn.execute(SCHEMA_GRANTS, {"name": name}).fetchall(), f"schema {_ident(name)}"))
        if name != "public" or len(block) > 1:
            blocks.append(block)
    for row in conn.execute(OWN_TABLES, {"tables": list(TABLES)}).fetchall():
        blocks.append(_table(conn, *row))
    others = sorted(what for (what,) in conn.execute(OTHER_OBJECTS))
    if others:
        blocks.append(["-- not described here (add them to booking_cron/storage/schema_text.py):",
                       *(f"--   {what}" for what in others)])
    for row in conn.execute(OWN_FUNCTIONS, {"functions": list(FUNCTIONS)}).fetchall():
        blocks.append(_function(conn, *row))
    return HEADER + "".join("\n" + "\n".join(block) + "\n" for block in blocks)
