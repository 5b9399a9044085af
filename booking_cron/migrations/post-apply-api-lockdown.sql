-- Run by `db upgrade` after every migration run, and on every `db upgrade` (booking_cron/schema.py):
-- keeps booking-cron out of the reach of Supabase's API roles, whatever default privileges
-- granted to what a migration just created.
-- * booking-cron's own tables (every tick_* table, sms_inbound, the migration tool's yoyo tables): nothing for anon,
--   authenticated, service_role; row-level security on, with a policy only for booking_cron_tick.
-- * The ledger: readable as the app reads it; written only by booking-cron's functions and trigger.
-- * The outbox: the app writes it only through service_role and its security definer functions,
--   so API users cannot plant texts for booking-cron's sender.
-- * Functions: none executable by anon; the app's callable ones (complete_booking, use_session,
--   release_session) by authenticated and service_role, with membership checks inside; the
--   rest (batch forms, helpers, triggers) by neither. The callable ones are security invoker: they
--   record the call in booking_cron.api_calls, whose trigger does the work (migration 0047).
-- * booking-cron's own schema `booking_cron`: no function in it executable by any API role; only
--   what the callable functions need: usage, insert of a call and reading its outcome.

do $$
declare
  v_api text;
  v_table text;
  v_fn regprocedure;
begin
  select string_agg(quote_ident(r.rolname), ', ') into v_api
  from pg_catalog.pg_roles r where r.rolname in ('anon', 'authenticated', 'service_role');

  for v_table in
    select c.relname from pg_catalog.pg_class c
    join pg_catalog.pg_namespace n on n.oid = c.relnamespace
    where n.nspname = 'public' and c.relkind in ('r', 'p')
      and (c.relname like 'tick\_%' or c.relname = 'sms_inbound' or c.relname like '\_yoyo%' or c.relname like 'yoyo\_%')
  loop
    execute format('revoke all on public.%I from public', v_table);
    if v_api is not null then
      execute format('revoke all on public.%I from %s', v_table, v_api);
    end if;
    execute format('alter table public.%I enable row level security', v_table);
  end loop;

  if v_api is not null then
    execute format('revoke insert, update, delete, truncate on public.session_usage from %s', v_api);
  end if;
  for v_api in select r.rolname from pg_catalog.pg_roles r where r.rolname in ('anon', 'authenticated') loop
    execute format('revoke insert, update, delete, truncate on public.sms_messages from %I', v_api);
  end loop;

  for v_fn in
    select p.oid::regprocedure from pg_catalog.pg_proc p
    join pg_catalog.pg_namespace n on n.oid = p.pronamespace
    where n.nspname = 'public'
      and (p.proname in ('use_sessions', 'release_sessions', 'use_session', 'release_session', 'complete_booking')
           or p.proname like 'booking\_cron\_%')
  loop
    execute format('revoke execute on function %s from public', v_fn);
    for v_api in select r.rolname from pg_catalog.pg_roles r where r.rolname = 'anon'
                 or (r.rolname in ('authenticated', 'service_role')
                     and (v_fn::text like 'booking_cron_%' or v_fn::text like 'public.booking_cron_%'))
                 or (r.rolname = 'authenticated' and v_fn::text ~ '^(public\.)?(use|release)_sessions\(')
    loop
      execute format('revoke execute on function %s from %I', v_fn, v_api);
    end loop;
  end loop;
end;
$$;

-- The tick's role works across every org where row-level security is on.
do $$
declare
  v_table text;
begin
  for v_table in
    select c.relname from pg_catalog.pg_class c
    join pg_catalog.pg_namespace n on n.oid = c.relnamespace
    where n.nspname = 'public' and c.relrowsecurity
      and (c.relname in ('orgs', 'booking_settings', 'clients', 'client_purchases', 'bookings', 'sms_settings',
                        'sms_schedules', 'sms_messages', 'sms_suppression', 'session_usage')
           or c.relname like 'tick\_%')
      and not exists (select 1 from pg_catalog.pg_policies p
                      where p.schemaname = 'public' and p.tablename = c.relname and p.policyname = 'booking_cron_tick')
  loop
    execute format('create policy booking_cron_tick on public.%I to booking_cron_tick using (true) with check (true)',
                   v_table);
  end loop;
end;
$$;

-- booking-cron's own schema: the API roles may record a call (authenticated, service_role) and read
-- its outcome, nothing more; no function there is theirs to execute.
do $$
declare
  v_api text;
  v_fn regprocedure;
begin
  if to_regnamespace('booking_cron') is null then
    return;
  end if;
  revoke all on schema booking_cron from public;
  for v_fn in
    select p.oid::regprocedure from pg_catalog.pg_proc p
    join pg_catalog.pg_namespace n on n.oid = p.pronamespace
    where n.nspname = 'booking_cron'
  loop
    execute format('revoke execute on function %s from public', v_fn);
    for v_api in select r.rolname from pg_catalog.pg_roles r where r.rolname in ('anon', 'authenticated', 'service_role') loop
      execute format('revoke execute on function %s from %I', v_fn, v_api);
    end loop;
  end loop;
  revoke all on booking_cron.api_calls from public;
  for v_api in select r.rolname from pg_catalog.pg_roles r where r.rolname in ('anon', 'authenticated', 'service_role') loop
    execute format('revoke all on booking_cron.api_calls from %I', v_api);
    if v_api = 'anon' then
      execute format('revoke all on schema booking_cron from %I', v_api);
      continue;
    end if;
    execute format('grant usage on schema booking_cron to %I', v_api);
    execute format('grant insert (call, purchase_id, booking_id), select (outcome) on booking_cron.api_calls to %I', v_api);
    -- a caller reads back only its own calls' outcomes (INSERT ... RETURNING needs it)
    execute format('drop policy if exists %I on booking_cron.api_calls', 'api_call_' || v_api);
    execute format('create policy %I on booking_cron.api_calls to %I using (caller_user is not distinct from '
                   '(nullif(current_setting(''request.jwt.claims'', true), '''')::jsonb ->> ''sub'')) with check (true)',
                   'api_call_' || v_api, v_api);
  end loop;
end;
$$;

-- Which org may send from which sender (booking_cron.senders, migration 0049): no API role reads or
-- writes it, whatever was granted since; the platform assigns through service_role's writes of
-- sms_settings or `booking-cron senders assign`, and the tick's role only reads it.
do $$
declare
  v_api text;
begin
  if to_regclass('booking_cron.senders') is null then
    return;
  end if;
  revoke all on booking_cron.senders from public;
  for v_api in select r.rolname from pg_catalog.pg_roles r where r.rolname in ('anon', 'authenticated', 'service_role') loop
    execute format('revoke all on booking_cron.senders from %I', v_api);
  end loop;
  alter table booking_cron.senders enable row level security;
end;
$$;

-- The app's own functions that write the outbox with their owner's rights (its insert_sms_direct):
-- not for anon or authenticated, who could plant texts with them (the app calls them as service_role).
do $$
declare
  v_api text;
  v_fn regprocedure;
begin
  for v_fn in
    select p.oid::regprocedure from pg_catalog.pg_proc p
    join pg_catalog.pg_namespace n on n.oid = p.pronamespace
    where n.nspname = 'public' and p.prosecdef and p.prosrc ~* 'insert\s+into\s+(public\.)?sms_messages'
      and p.proname not in ('use_sessions', 'release_sessions', 'use_session', 'release_session', 'complete_booking')
      and p.proname not like 'booking\_cron\_%'
  loop
    execute format('revoke execute on function %s from public', v_fn);
    for v_api in select r.rolname from pg_catalog.pg_roles r where r.rolname in ('anon', 'authenticated') loop
      execute format('revoke execute on function %s from %I', v_fn, v_api);
    end loop;
  end loop;
end;
$$;
