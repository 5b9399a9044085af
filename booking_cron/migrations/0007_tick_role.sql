-- booking_cron_tick: the least a tick needs, as a NOLOGIN role for the tick's login user to be
-- granted (`grant booking_cron_tick to <login role>`). The tick reads the app's tables, completes
-- bookings (status, updated_at), writes its own tick_* records and the SMS outbox, and adds
-- suppressions; it never updates a pack: deductions go through use_sessions(), a security
-- definer function, so sessions_used only moves together with its ledger row.
-- Roles are cluster-wide: the role may exist already (another database, an earlier run, a
-- concurrent migration), so creating it tolerates that; the grants are per database.

do $$
begin
  if not exists (select 1 from pg_catalog.pg_roles where rolname = 'booking_cron_tick') then
    create role booking_cron_tick nologin;
  end if;
exception
  when duplicate_object or unique_violation then null;  -- created concurrently by another database's upgrade
end;
$$;

grant usage on schema public to booking_cron_tick;

grant select on public.orgs, public.booking_settings, public.clients, public.client_purchases, public.bookings,
  public.sms_settings, public.sms_schedules, public.sms_messages, public.sms_suppression
  to booking_cron_tick;
grant update (status, updated_at) on public.bookings to booking_cron_tick;
grant select, insert, update on public.tick_runs, public.tick_results, public.tick_completions to booking_cron_tick;
grant insert, update on public.sms_messages to booking_cron_tick;
grant insert on public.sms_suppression to booking_cron_tick;
grant execute on function public.use_sessions(uuid[], uuid[]) to booking_cron_tick;

-- Whatever an existing role of this name was given before, a tick never writes packs or the ledger.
revoke insert, update, delete, truncate on public.client_purchases, public.session_usage from booking_cron_tick;

-- Tables of an app database may have row-level security on; the tick works across every org.
do $$
declare
  v_table text;
begin
  for v_table in
    select c.relname from pg_catalog.pg_class c
    join pg_catalog.pg_namespace n on n.oid = c.relnamespace
    where n.nspname = 'public' and c.relrowsecurity
      and c.relname in ('orgs', 'booking_settings', 'clients', 'client_purchases', 'bookings', 'sms_settings',
                        'sms_schedules', 'sms_messages', 'sms_suppression', 'tick_runs', 'tick_results',
                        'tick_completions')
      and not exists (select 1 from pg_catalog.pg_policies p
                      where p.schemaname = 'public' and p.tablename = c.relname and p.policyname = 'booking_cron_tick')
  loop
    execute format('create policy booking_cron_tick on public.%I to booking_cron_tick using (true) with check (true)',
                   v_table);
  end loop;
end;
$$;
