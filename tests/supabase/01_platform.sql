-- What Supabase sets up before any app migration: the API roles (NOLOGIN; the API's login role
-- switches to them with SET ROLE), an `auth` schema whose uid() reads the request's JWT claims,
-- and (in __init__.py, as the owner) default privileges that grant everything later created in `public` to the API roles.
-- Roles are cluster-wide: another test database may be creating them at the same moment.
do $$
declare
  v_role text;
begin
  foreach v_role in array array['anon', 'authenticated', 'service_role', 'authenticator'] loop
    begin
      if not exists (select 1 from pg_catalog.pg_roles where rolname = v_role) then
        execute format('create role %I nologin noinherit', v_role);
      end if;
    exception when duplicate_object or unique_violation then null;
    end;
  end loop;
end;
$$;
alter role service_role bypassrls;
-- PostgREST logs in as `authenticator` and switches to the request's role (SET LOCAL ROLE).
alter role authenticator login;
grant anon, authenticated, service_role to authenticator;

create schema auth;
create table auth.users (id uuid primary key, email text);

create function auth.uid() returns uuid language sql stable as $$
  select coalesce(nullif(current_setting('request.jwt.claim.sub', true), ''),
                  (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'))::uuid
$$;
create function auth.role() returns text language sql stable as $$
  select coalesce(nullif(current_setting('request.jwt.claim.role', true), ''),
                  (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role'))
$$;
grant usage on schema auth to anon, authenticated, service_role;
grant execute on all functions in schema auth to anon, authenticated, service_role;

grant usage on schema public to anon, authenticated, service_role;
-- uuid-ossp, the owner's membership in the API roles and its default privileges: tests/supabase/__init__.py
