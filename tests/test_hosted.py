"""Installing and running on hosted PostgreSQL, where the database owner is never a superuser.

The cluster superuser only creates the owner role and an empty database (tests/hosting.py), as a
provider does; everything else runs as the owner through the real command line. Also: the security
definer functions cannot be hijacked through `public`, and a database that a superuser upgraded
before (its objects owned by the superuser) is named by `db upgrade` and `doctor`, and repaired by
one superuser upgrade.
"""

from __future__ import annotations

import json

import psycopg
import pytest

from booking_cron.storage import schema
from tests import factories as f
from tests import hosting
from tests.faultkit import T, cli, cli_env

# Every function booking-cron defines, with the security it must have.
OURS = r"""
(n.nspname = 'booking_cron'
 or (n.nspname = 'public'
     and (p.proname in ('use_sessions', 'release_sessions', 'use_session', 'release_session', 'complete_booking')
          or p.proname like 'booking\_cron\_%')))
"""
FUNCTIONS = rf"""
select format('%s.%s(%s)', n.nspname, p.proname, oidvectortypes(p.proargtypes)), pg_get_userbyid(p.proowner),
       p.prosecdef, p.proconfig
from pg_proc p join pg_namespace n on n.oid = p.pronamespace
where {OURS}
order by 1
"""

# What Supabase's advisor (splinter) warns about in functions, restricted to ours: a search_path the
# caller can change (lint 0011), a security definer function that anon or authenticated may execute
# (lints 0028 and 0029).
ADVISOR_WARNINGS = rf"""
select 'function_search_path_mutable', p.oid::regprocedure::text
from pg_proc p join pg_namespace n on n.oid = p.pronamespace
where {OURS} and not exists (select from unnest(coalesce(p.proconfig, '{{}}')) c where c like 'search_path=%')
union all
select r.rolname || '_security_definer_function_executable', p.oid::regprocedure::text
from pg_proc p join pg_namespace n on n.oid = p.pronamespace cross join pg_roles r
where {OURS} and p.prosecdef and r.rolname in ('anon', 'authenticated')
  and has_function_privilege(r.oid, p.oid, 'execute')
"""

# What `db upgrade` could change: functions (body, settings, owner, grants), tables (owner, grants,
# row-level security), columns, indexes, policies, triggers, and who is a member of the tick's role.
CATALOG = r"""
select 'function', p.oid::regprocedure::text,
       concat_ws(' | ', md5(p.prosrc), p.proconfig::text, pg_get_userbyid(p.proowner), p.proacl::text)
from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname = 'public'
union all
select 'relation', c.relname, concat_ws(' | ', c.relkind, pg_get_userbyid(c.relowner), c.relacl::text,
                                        c.relrowsecurity::text, c.relforcerowsecurity::text)
from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'public'
union all
select 'column', a.attrelid::regclass::text || '.' || a.attname,
       concat_ws(' | ', format_type(a.atttypid, a.atttypmod), a.attnotnull::text, a.attacl::text)
from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
where n.nspname = 'public' and a.attnum > 0 and not a.attisdropped
union all
select 'policy', tablename || '.' || policyname, concat_ws(' | ', roles::text, qual, with_check)
from pg_policies where schemaname = 'public'
union all
select 'trigger', tgrelid::regclass::text || '.' || tgname, pg_get_triggerdef(t.oid)
from pg_trigger t where not tgisinternal
union all
select 'member', r.rolname, string_agg(m.rolname, ',' order by m.rolname)
from pg_auth_members am join pg_roles r on r.oid = am.roleid join pg_roles m on m.oid = am.member
where r.rolname = 'booking_cron_tick' group by r.rolname
order by 1, 2
"""


@pytest.fixture
def owned(server_url):
    """An empty database of a non-superuser owner: its URL as that owner."""
    with hosting.owned_database(server_url, "booking_cron_hosted") as url:
        yield url


def snapshot(url: str) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(CATALOG).fetchall()


def test_the_owner_role_is_not_a_superuser(owned):
    with psycopg.connect(owned, autocommit=True) as conn:
        assert conn.execute("select rolsuper, rolbypassrls, rolcreaterole from pg_roles where rolname = current_user"
                            ).fetchone() == (False, False, True)


def test_the_owner_installs_and_runs_every_command_from_the_command_line(owned, prefect_api):
    env = cli_env(prefect_api, database_url=owned)
    for _ in range(3):
        upgraded = cli(["db", "upgrade"], env)
        assert upgraded.returncode == 0, upgraded.stderr[-3000:]
    assert "applied 0 migration(s)" in upgraded.stdout

    steps = [["doctor"],
             ["seed", "--orgs", "3", "--clients", "20", "--bookings", "120", "--at", T.isoformat()],
             ["run", "--at", T.isoformat(), "--json"],
             ["backfill", "--start", (T.replace(hour=0)).isoformat(), "--end", T.isoformat(), "--every", "1h", "--json"],
             ["results", "--json"],
             ["audit", "--json"],
             ["doctor", "--json"]]
    for args in steps:
        done = cli(args, env)
        assert done.returncode == 0, f"{args}: exit {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    tick = json.loads([line for line in cli(["run", "--at", T.isoformat(), "--json"], env).stdout.splitlines()
                       if line.startswith("{")][-1])
    assert tick["completed"] == 0  # the first run completed them all
    with psycopg.connect(owned, autocommit=True) as conn:
        assert conn.execute("select count(*) from tick_completions").fetchone()[0] > 0
        assert conn.execute("select count(*) from session_usage where booking_id is not null").fetchone()[0] > 0


def test_a_second_and_third_upgrade_change_nothing(owned):
    schema.upgrade(owned)
    first = snapshot(owned)
    assert schema.upgrade(owned) == []
    assert snapshot(owned) == first
    assert schema.upgrade(owned) == []
    assert snapshot(owned) == first


def test_every_function_is_the_owners_with_a_search_path_of_pg_catalog_and_pg_temp_only(owned):
    schema.upgrade(owned)
    with psycopg.connect(owned, autocommit=True) as conn:
        owner = conn.execute("select current_user").fetchone()[0]
        functions = conn.execute(FUNCTIONS).fetchall()
    assert len(functions) == 27
    for signature, function_owner, _, config in functions:
        assert function_owner == owner, signature
        assert config == ["search_path=pg_catalog, pg_temp"], signature
    definers = {s for s, _, definer, _ in functions if definer}
    assert {"public.use_sessions(uuid[], uuid[])", "booking_cron.complete_booking(uuid)",
            "booking_cron.serve_api_call()",
            "booking_cron.take_send_slot(text, double precision, text, double precision)"} <= definers
    assert "public.complete_booking(uuid)" not in definers


def test_supabases_advisor_finds_nothing_of_ours_and_the_apps_calls_still_work(server_url):
    from tests import supabase as app

    with app.app_database(server_url, "booking_cron_advisor") as url:
        schema.upgrade(url)
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute(ADVISOR_WARNINGS).fetchall() == []
            org = app.org(conn, "Advised")
            client = app.client(conn, org)
            pack = app.add_package(conn, org, client, total=5)
            booking = conn.execute(
                "insert into bookings (org_id, client_id, purchase_id, start_time, end_time) values (%s, %s, %s, %s, %s) "
                "returning id::text", (org.id, client, pack, T, T)).fetchone()[0]
            with app.api(conn, "authenticated", org.trainer):
                assert conn.execute("select complete_booking(%s)", (booking,)).fetchone()[0] == "deducted"
            assert app.use_one(conn, org, pack) is True
            assert app.reinstate(conn, org, pack) == 1
            stranger = app.org(conn, "Elsewhere")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                with app.api(conn, "authenticated", stranger.trainer):
                    conn.execute("select use_session(%s::uuid)", (pack,))
            for role in ("anon", "authenticated"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    with app.api(conn, role, org.trainer if role == "authenticated" else None):
                        conn.execute("select booking_cron.complete_booking(%s)", (booking,))
            calls = conn.execute("select call, caller_role, outcome from booking_cron.api_calls order by id").fetchall()
            assert calls == [("complete_booking", "authenticated", "deducted"),
                             ("use_session_legacy", "authenticated", "true"),
                             ("release_session_legacy", "authenticated", "1")]


def test_nothing_created_in_public_can_shadow_what_the_definer_functions_call(owned):
    """Supabase's `postgres` may create functions in `public`: an overload with exact argument types
    would win over pg_catalog's polymorphic one if `public` were on the function's search_path."""
    schema.upgrade(owned)
    with psycopg.connect(owned, autocommit=True) as conn:
        conn.execute("create table public.hijacked (at timestamptz default now())")
        conn.execute("""create function public.array_length(uuid[], integer) returns integer language plpgsql as $$
                        begin insert into public.hijacked default values; return 99; end $$""")
        conn.execute("""create function public.now() returns timestamptz language plpgsql as $$
                        begin insert into public.hijacked default values; return 'epoch'; end $$""")
        org = f.org(conn)
        client = f.client(conn, org)
        pack = f.pack(conn, org, client, total=5)
        booking = f.booking(conn, org, client, pack)
        assert conn.execute("select outcome from use_sessions(array[%s]::uuid[], array[%s]::uuid[])",
                            (pack, booking)).fetchone()[0] == "deducted"
        assert conn.execute("select use_session(%s::uuid)", (pack,)).fetchone()[0] is True
        assert conn.execute("select release_session(%s::uuid, %s::uuid)", (pack, booking)).fetchone()[0] == "released"
        assert conn.execute("select count(*) from public.hijacked").fetchone()[0] == 0
        assert f.sessions_used(conn, pack) == 1


def test_the_pack_mark_is_taken_off_when_a_function_returns(owned):
    """booking-cron's functions mark their own pack writes for the ledger trigger; the mark must not
    outlive the call, or a later write in the same transaction would escape the ledger."""
    schema.upgrade(owned)
    with psycopg.connect(owned) as conn:
        org = f.org(conn)
        client = f.client(conn, org)
        pack = f.pack(conn, org, client, total=5)
        booking = f.booking(conn, org, client, pack)
        conn.execute("select * from use_sessions(array[%s]::uuid[], array[%s]::uuid[])", (pack, booking))
        conn.execute("select use_session(%s::uuid)", (pack,))
        conn.execute("select release_session(%s::uuid)", (pack,))
        conn.execute("update client_purchases set sessions_used = sessions_used + 2 where id = %s", (pack,))
        conn.commit()
        assert conn.execute("select sum(sessions) from session_usage where purchase_id = %s and released_at is null",
                            (pack,)).fetchone()[0] == f.sessions_used(conn, pack) == 3


def test_a_superusers_upgrade_creates_everything_as_the_owner(server_url, owned):
    schema.upgrade(hosting.as_superuser(server_url, owned))
    with psycopg.connect(owned, autocommit=True) as conn:
        owners = {o for (o,) in conn.execute(
            "select distinct tableowner from pg_tables where schemaname = 'public' union "
            "select distinct pg_get_userbyid(proowner) from pg_proc p join pg_namespace n on n.oid = p.pronamespace "
            "where n.nspname = 'public'")}
    assert owners == {hosting.OWNER}
    assert schema.upgrade(owned) == []


def test_objects_a_superuser_owns_are_named_and_one_superuser_upgrade_gives_them_back(server_url, owned, prefect_api):
    schema.upgrade(owned)
    admin = hosting.as_superuser(server_url, owned)
    with psycopg.connect(admin, autocommit=True) as conn:  # what an upgrade as a superuser used to leave
        conn.execute("alter function public.use_sessions(uuid[], uuid[]) owner to current_user")
        conn.execute("alter table public.sms_inbound owner to current_user")
    env = cli_env(prefect_api, database_url=owned)

    refused = cli(["db", "upgrade"], env)
    assert refused.returncode != 0
    assert "sms_inbound" in refused.stderr and "booking-cron db upgrade" in refused.stderr

    doctor = cli(["doctor", "--json"], env)
    assert doctor.returncode == 1
    found = {(h["hazard"], h["subject"]) for h in json.loads(doctor.stdout)["hazards"]}
    assert {("owned_by_superuser", "use_sessions(uuid[],uuid[])"), ("owned_by_superuser", "sms_inbound")} <= found

    assert cli(["db", "upgrade"], cli_env(prefect_api, database_url=admin)).returncode == 0
    assert cli(["db", "upgrade"], env).returncode == 0
    assert cli(["doctor"], env).returncode == 0
