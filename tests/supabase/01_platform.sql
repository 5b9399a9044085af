-- What Supabase sets up before any app migration: the API roles (NOLOGIN; the API's login role
-- switches to them with SET ROLE), an `auth` schema whose uid() reads the request's JWT claims,
-- and default privileges that grant everything later created in `public` to the API roles.
-- Roles are cluster-wide: another test database may be creating them at the same moment.
do $$
declare
  v_role text;
begin
  foreach v_role in array array['anon', 'authenticated', 'service_role'] loop
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

create extension if not exists "uuid-ossp" with schema public;

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
alter default privileges for role postgres in schema public grant all on tables to anon, authenticated, service_role;
alter default privileges for role postgres in schema public grant all on sequences to anon, authenticated, service_role;
alter default privileges for role postgres in schema public grant all on functions to anon, authenticated, service_role;
