-- booking-cron's schema: what `booking-cron db upgrade` creates in an empty database, on a server that
-- has Supabase's API roles (anon, authenticated, service_role) but not Supabase's default privileges.
-- Generated from the catalog by `make schema` (`booking-cron db schema` prints it for the database it
-- is wired to); do not edit by hand. Owners are not shown (everything belongs to the database owner),
-- nor the privileges an owner has on what it owns.

-- schema public
grant usage on schema public to booking_cron_tick;
grant usage on schema public to public;

-- schema booking_cron
create schema booking_cron;
grant usage on schema booking_cron to authenticated;
grant usage on schema booking_cron to booking_cron_tick;
grant usage on schema booking_cron to service_role;

-- table public.booking_settings
create table public.booking_settings (
    id uuid default gen_random_uuid() not null,
    org_id uuid not null,
    timezone text default 'Australia/Brisbane'::text not null,
    created_at timestamp with time zone default now() not null,
    updated_at timestamp with time zone default now() not null,
    constraint booking_settings_pkey PRIMARY KEY (id),
    constraint booking_settings_org_id_key UNIQUE (org_id),
    constraint booking_settings_org_id_fkey FOREIGN KEY (org_id) REFERENCES public.orgs(id) ON DELETE CASCADE
);
grant select on public.booking_settings to booking_cron_tick;

-- table public.bookings
create table public.bookings (
    id uuid default gen_random_uuid() not null,
    org_id uuid not null,
    client_id uuid not null,
    purchase_id uuid,
    start_time timestamp with time zone not null,
    end_time timestamp with time zone not null,
    location_type text default 'in_person'::text not null,
    status text default 'confirmed'::text not null,
    created_at timestamp with time zone default now() not null,
    updated_at timestamp with time zone default now() not null,
    client_confirmed boolean default false,
    confirmation_sent_at timestamp with time zone,
    cancelled_at timestamp with time zone,
    constraint bookings_pkey PRIMARY KEY (id),
    constraint bookings_status_check CHECK (status = ANY (ARRAY['pending'::text, 'confirmed'::text, 'cancelled'::text, 'completed'::text, 'no_show'::text])),
    constraint bookings_client_id_fkey FOREIGN KEY (client_id) REFERENCES public.clients(id) ON DELETE CASCADE,
    constraint bookings_org_id_fkey FOREIGN KEY (org_id) REFERENCES public.orgs(id) ON DELETE CASCADE,
    constraint bookings_purchase_id_fkey FOREIGN KEY (purchase_id) REFERENCES public.client_purchases(id)
);
CREATE INDEX bookings_confirmed_end_time_idx ON public.bookings USING btree (end_time) WHERE (status = 'confirmed'::text);
CREATE INDEX bookings_confirmed_id_end_time_idx ON public.bookings USING btree (id, end_time) WHERE (status = 'confirmed'::text);
CREATE INDEX bookings_purchase_id_idx ON public.bookings USING btree (purchase_id);
CREATE TRIGGER booking_cron_guard_booking_write BEFORE INSERT OR UPDATE ON public.bookings FOR EACH ROW WHEN (current_setting('role'::text, true) = ANY (ARRAY['anon'::text, 'authenticated'::text])) EXECUTE FUNCTION booking_cron.guard_booking_write();
CREATE TRIGGER booking_cron_stamp_cancelled_at BEFORE INSERT OR UPDATE OF status ON public.bookings FOR EACH ROW WHEN (new.status = 'cancelled'::text AND new.cancelled_at IS NULL) EXECUTE FUNCTION public.booking_cron_stamp_cancelled_at();
grant select on public.bookings to booking_cron_tick;
grant update (status, updated_at) on public.bookings to booking_cron_tick;

-- table public.client_purchases
create table public.client_purchases (
    id uuid default gen_random_uuid() not null,
    org_id uuid not null,
    client_id uuid not null,
    sessions_total integer,
    sessions_used integer default 0,
    purchased_at timestamp with time zone default now() not null,
    expires_at timestamp with time zone,
    payment_status text default 'pending'::text,
    created_at timestamp with time zone default now() not null,
    constraint client_purchases_pkey PRIMARY KEY (id),
    constraint client_purchases_payment_status_check CHECK (payment_status = ANY (ARRAY['pending'::text, 'succeeded'::text, 'failed'::text, 'refunded'::text])),
    constraint client_purchases_client_id_fkey FOREIGN KEY (client_id) REFERENCES public.clients(id) ON DELETE CASCADE,
    constraint client_purchases_org_id_fkey FOREIGN KEY (org_id) REFERENCES public.orgs(id) ON DELETE CASCADE
);
CREATE TRIGGER booking_cron_ledger_on_insert AFTER INSERT ON public.client_purchases FOR EACH ROW EXECUTE FUNCTION public.booking_cron_record_pack_change();
CREATE TRIGGER booking_cron_ledger_on_update AFTER UPDATE OF sessions_used ON public.client_purchases FOR EACH ROW WHEN (new.sessions_used IS DISTINCT FROM old.sessions_used) EXECUTE FUNCTION public.booking_cron_record_pack_change();
grant select on public.client_purchases to booking_cron_tick;

-- table public.clients
create table public.clients (
    id uuid default gen_random_uuid() not null,
    org_id uuid not null,
    full_name text not null,
    email text,
    phone text,
    status text default 'active'::text not null,
    created_at timestamp with time zone default now() not null,
    sms_reminder_enabled boolean default true not null,
    sms_followup_enabled boolean default true not null,
    constraint clients_pkey PRIMARY KEY (id),
    constraint clients_org_id_fkey FOREIGN KEY (org_id) REFERENCES public.orgs(id) ON DELETE CASCADE
);
CREATE TRIGGER booking_cron_guard_client_write BEFORE UPDATE OF org_id ON public.clients FOR EACH ROW WHEN (new.org_id IS DISTINCT FROM old.org_id AND (current_setting('role'::text, true) = ANY (ARRAY['anon'::text, 'authenticated'::text]))) EXECUTE FUNCTION booking_cron.guard_client_write();
grant select on public.clients to booking_cron_tick;

-- table public.orgs
create table public.orgs (
    id uuid default gen_random_uuid() not null,
    name text not null,
    created_at timestamp with time zone default now() not null,
    constraint orgs_pkey PRIMARY KEY (id)
);
grant select on public.orgs to booking_cron_tick;

-- table public.session_usage
create table public.session_usage (
    id uuid default gen_random_uuid() not null,
    org_id uuid not null,
    client_id uuid not null,
    purchase_id uuid,
    session_date date default CURRENT_DATE not null,
    created_at timestamp with time zone default now() not null,
    booking_id uuid,
    source text default 'legacy'::text not null,
    sessions integer default 1 not null,
    released_at timestamp with time zone,
    pack_total integer,
    pack_used_after bigint,
    constraint session_usage_pkey PRIMARY KEY (id),
    constraint session_usage_booking_id_fkey FOREIGN KEY (booking_id) REFERENCES public.bookings(id) ON DELETE SET NULL,
    constraint session_usage_client_id_fkey FOREIGN KEY (client_id) REFERENCES public.clients(id) ON DELETE CASCADE,
    constraint session_usage_org_id_fkey FOREIGN KEY (org_id) REFERENCES public.orgs(id) ON DELETE CASCADE,
    constraint session_usage_purchase_id_fkey FOREIGN KEY (purchase_id) REFERENCES public.client_purchases(id)
);
CREATE UNIQUE INDEX session_usage_booking_id_key ON public.session_usage USING btree (booking_id) WHERE (booking_id IS NOT NULL);
CREATE INDEX session_usage_purchase_id_idx ON public.session_usage USING btree (purchase_id);
grant select on public.session_usage to booking_cron_tick;

-- table public.sms_inbound
create table public.sms_inbound (
    id uuid default gen_random_uuid() not null,
    message_sid text not null,
    from_phone text not null,
    to_phone text not null,
    org_ids uuid[] default '{}'::uuid[] not null,
    body text default ''::text not null,
    action text not null,
    outcome text,
    received_at timestamp with time zone default now() not null,
    constraint sms_inbound_pkey PRIMARY KEY (id),
    constraint sms_inbound_message_sid_key UNIQUE (message_sid),
    constraint sms_inbound_action_check CHECK (action = ANY (ARRAY['opt_out'::text, 'opt_in'::text, 'confirm'::text, 'other'::text]))
);
CREATE INDEX sms_inbound_from_idx ON public.sms_inbound USING btree (from_phone, received_at);
alter table public.sms_inbound enable row level security;

-- table public.sms_messages
create table public.sms_messages (
    id uuid default gen_random_uuid() not null,
    org_id uuid not null,
    client_id uuid,
    to_phone text not null,
    from_phone text default ''::text not null,
    body text not null,
    related_entity_type text,
    related_entity_id uuid,
    status text default 'pending'::text not null,
    scheduled_for timestamp with time zone default now() not null,
    sent_at timestamp with time zone,
    idempotency_key text,
    error_code text,
    error_message text,
    created_at timestamp with time zone default now() not null,
    updated_at timestamp with time zone default now() not null,
    provider_message_id text,
    kind text,
    schedule_id uuid,
    session_start timestamp with time zone,
    expires_at timestamp with time zone,
    locked_until timestamp with time zone,
    attempts integer default 0 not null,
    flow_run_id uuid,
    messaging_service_sid text,
    queued_by text,
    attempted_at timestamp with time zone,
    constraint sms_messages_pkey PRIMARY KEY (id),
    constraint sms_messages_idempotency_key_key UNIQUE (idempotency_key),
    constraint sms_messages_status_check CHECK (status = ANY (ARRAY['pending'::text, 'queued'::text, 'scheduled'::text, 'sending'::text, 'sent'::text, 'delivered'::text, 'failed'::text, 'cancelled'::text, 'skipped'::text, 'expired'::text, 'unknown'::text])),
    constraint sms_messages_client_id_fkey FOREIGN KEY (client_id) REFERENCES public.clients(id) ON DELETE CASCADE,
    constraint sms_messages_org_id_fkey FOREIGN KEY (org_id) REFERENCES public.orgs(id) ON DELETE CASCADE
);
CREATE INDEX sms_messages_entity_idx ON public.sms_messages USING btree (related_entity_id);
CREATE INDEX sms_messages_provider_message_id_idx ON public.sms_messages USING btree (provider_message_id) WHERE (provider_message_id IS NOT NULL);
CREATE INDEX sms_messages_scheduled_idx ON public.sms_messages USING btree (scheduled_for) WHERE (status = ANY (ARRAY['scheduled'::text, 'sending'::text]));
CREATE INDEX sms_messages_sent_idx ON public.sms_messages USING btree (org_id, sent_at) WHERE (sent_at IS NOT NULL);
CREATE TRIGGER booking_cron_stamp_queued_by BEFORE INSERT ON public.sms_messages FOR EACH ROW WHEN (current_setting('role'::text, true) = ANY (ARRAY['anon'::text, 'authenticated'::text])) EXECUTE FUNCTION booking_cron.stamp_queued_by();
grant select, insert, update on public.sms_messages to booking_cron_tick;

-- table public.sms_schedules
create table public.sms_schedules (
    id uuid default gen_random_uuid() not null,
    org_id uuid not null,
    type text not null,
    label text default ''::text not null,
    mins_offset integer default 60 not null,
    body text not null,
    enabled boolean default true not null,
    created_at timestamp with time zone default now() not null,
    constraint sms_schedules_pkey PRIMARY KEY (id),
    constraint sms_schedules_type_check CHECK (type = ANY (ARRAY['pre_session'::text, 'post_session'::text])),
    constraint sms_schedules_org_id_fkey FOREIGN KEY (org_id) REFERENCES public.orgs(id) ON DELETE CASCADE
);
grant select on public.sms_schedules to booking_cron_tick;

-- table public.sms_settings
create table public.sms_settings (
    org_id uuid not null,
    twilio_messaging_service_sid text,
    twilio_phone_number text,
    quiet_hours_start integer default 21,
    quiet_hours_end integer default 8,
    max_sms_per_hour integer default 100,
    max_sms_per_client_per_day integer default 5,
    enabled boolean default true not null,
    updated_at timestamp with time zone default now() not null,
    constraint sms_settings_pkey PRIMARY KEY (org_id),
    constraint sms_settings_quiet_hours_end_check CHECK (quiet_hours_end >= 0 AND quiet_hours_end <= 23),
    constraint sms_settings_quiet_hours_start_check CHECK (quiet_hours_start >= 0 AND quiet_hours_start <= 23),
    constraint sms_settings_org_id_fkey FOREIGN KEY (org_id) REFERENCES public.orgs(id) ON DELETE CASCADE
);
CREATE TRIGGER booking_cron_assign_settings_sender AFTER INSERT OR UPDATE OF twilio_phone_number, twilio_messaging_service_sid ON public.sms_settings FOR EACH ROW WHEN (COALESCE(current_setting('role'::text, true), 'none'::text) <> ALL (ARRAY['anon'::text, 'authenticated'::text])) EXECUTE FUNCTION booking_cron.assign_settings_sender();
grant select on public.sms_settings to booking_cron_tick;

-- table public.sms_suppression
create table public.sms_suppression (
    id uuid default gen_random_uuid() not null,
    org_id uuid not null,
    phone text not null,
    reason text not null,
    created_at timestamp with time zone default now() not null,
    constraint sms_suppression_pkey PRIMARY KEY (id),
    constraint unique_phone_per_org UNIQUE (org_id, phone),
    constraint sms_suppression_reason_check CHECK (reason = ANY (ARRAY['opt_out'::text, 'invalid_number'::text, 'carrier_violation'::text, 'manual'::text])),
    constraint sms_suppression_org_id_fkey FOREIGN KEY (org_id) REFERENCES public.orgs(id) ON DELETE CASCADE
);
CREATE TRIGGER booking_cron_stamp_suppression BEFORE INSERT OR UPDATE ON public.sms_suppression FOR EACH ROW WHEN (current_setting('role'::text, true) = ANY (ARRAY['anon'::text, 'authenticated'::text])) EXECUTE FUNCTION booking_cron.stamp_suppression();
grant select, insert, delete on public.sms_suppression to booking_cron_tick;
grant update (phone) on public.sms_suppression to booking_cron_tick;

-- table public.tick_completions
create table public.tick_completions (
    booking_id uuid not null,
    purchase_id uuid,
    flow_run_id uuid not null,
    completed_at timestamp with time zone default now() not null,
    deduction text,
    constraint tick_completions_pkey PRIMARY KEY (booking_id),
    constraint tick_completions_booking_id_fkey FOREIGN KEY (booking_id) REFERENCES public.bookings(id) ON DELETE CASCADE
);
CREATE INDEX tick_completions_owed_purchase_idx ON public.tick_completions USING btree (purchase_id) WHERE (deduction IS NULL);
CREATE INDEX tick_completions_pending_idx ON public.tick_completions USING btree (completed_at) WHERE (deduction IS NULL);
alter table public.tick_completions enable row level security;
create policy booking_cron_tick on public.tick_completions as permissive for all to booking_cron_tick using (true) with check (true);
grant select, insert, update on public.tick_completions to booking_cron_tick;

-- table public.tick_results
create table public.tick_results (
    flow_run_id uuid not null,
    booking_id uuid not null,
    step text not null,
    outcome text not null,
    reason text,
    detail jsonb,
    recorded_at timestamp with time zone default now() not null,
    constraint tick_results_pkey PRIMARY KEY (flow_run_id, booking_id, step)
);
CREATE INDEX tick_results_booking_id_idx ON public.tick_results USING btree (booking_id);
alter table public.tick_results enable row level security;
create policy booking_cron_tick on public.tick_results as permissive for all to booking_cron_tick using (true) with check (true);
grant select, insert, update on public.tick_results to booking_cron_tick;

-- table public.tick_runs
create table public.tick_runs (
    flow_run_id uuid not null,
    tick_at timestamp with time zone not null,
    trigger text default 'run'::text not null,
    state text default 'running'::text not null,
    started_at timestamp with time zone default now() not null,
    finished_at timestamp with time zone,
    summary jsonb,
    shard_index integer default 0 not null,
    shard_count integer default 1 not null,
    constraint tick_runs_pkey PRIMARY KEY (flow_run_id),
    constraint tick_runs_shard_check CHECK (shard_count >= 1 AND shard_index >= 0 AND shard_index < shard_count),
    constraint tick_runs_state_check CHECK (state = ANY (ARRAY['running'::text, 'finished'::text, 'failed'::text]))
);
CREATE INDEX tick_runs_tick_at_idx ON public.tick_runs USING btree (tick_at);
alter table public.tick_runs enable row level security;
create policy booking_cron_tick on public.tick_runs as permissive for all to booking_cron_tick using (true) with check (true);
grant select, insert, update on public.tick_runs to booking_cron_tick;

-- table booking_cron.api_calls
create table booking_cron.api_calls (
    id bigint generated always as identity not null,
    called_at timestamp with time zone default now() not null,
    caller_role text,
    caller_user text,
    call text not null,
    purchase_id uuid,
    booking_id uuid,
    outcome text,
    constraint api_calls_pkey PRIMARY KEY (id),
    constraint api_calls_call_check CHECK (call = ANY (ARRAY['complete_booking'::text, 'use_session'::text, 'use_session_legacy'::text, 'release_session'::text, 'release_session_legacy'::text]))
);
alter table booking_cron.api_calls enable row level security;
create policy api_call_authenticated on booking_cron.api_calls as permissive for all to authenticated using ((NOT (caller_user IS DISTINCT FROM ((NULLIF(current_setting('request.jwt.claims'::text, true), ''::text))::jsonb ->> 'sub'::text)))) with check (true);
create policy api_call_service_role on booking_cron.api_calls as permissive for all to service_role using ((NOT (caller_user IS DISTINCT FROM ((NULLIF(current_setting('request.jwt.claims'::text, true), ''::text))::jsonb ->> 'sub'::text)))) with check (true);
CREATE TRIGGER booking_cron_serve_api_call BEFORE INSERT ON booking_cron.api_calls FOR EACH ROW EXECUTE FUNCTION booking_cron.serve_api_call();
grant select (outcome) on booking_cron.api_calls to authenticated;
grant insert (call, purchase_id, booking_id) on booking_cron.api_calls to authenticated;
grant select (outcome) on booking_cron.api_calls to service_role;
grant insert (call, purchase_id, booking_id) on booking_cron.api_calls to service_role;

-- table booking_cron.send_slots
create table booking_cron.send_slots (
    key text not null,
    next_at timestamp with time zone not null,
    constraint send_slots_pkey PRIMARY KEY (key)
);

-- table booking_cron.senders
create table booking_cron.senders (
    kind text not null,
    sender text not null,
    org_id uuid not null,
    assigned_at timestamp with time zone default now() not null,
    assigned_by text not null,
    constraint senders_pkey PRIMARY KEY (kind, sender),
    constraint senders_form CHECK (
CASE kind
    WHEN 'phone'::text THEN sender ~ '^\+[1-9][0-9]{6,14}$'::text
    ELSE sender ~ '^MG[0-9a-fA-F]{32}$'::text
END),
    constraint senders_kind_check CHECK (kind = ANY (ARRAY['phone'::text, 'messaging_service'::text])),
    constraint senders_org_id_fkey FOREIGN KEY (org_id) REFERENCES public.orgs(id) ON DELETE CASCADE
);
CREATE INDEX senders_org_id ON booking_cron.senders USING btree (org_id);
alter table booking_cron.senders enable row level security;
create policy booking_cron_tick on booking_cron.senders as permissive for select to booking_cron_tick using (true);
grant select on booking_cron.senders to booking_cron_tick;

-- function public.booking_cron_may_act(uuid)
CREATE OR REPLACE FUNCTION public.booking_cron_may_act(p_org_id uuid)
 RETURNS boolean
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  v_role text := current_setting('role', true);
  v_member boolean;
begin
  if v_role = 'anon' then
    return false;
  end if;
  if v_role is distinct from 'authenticated' then
    return true;
  end if;
  if to_regclass('public.org_members') is null or to_regprocedure('auth.uid()') is null then
    return false;
  end if;
  execute 'select exists (select 1 from public.org_members m where m.org_id = $1 and m.user_id = auth.uid())'
    into v_member using p_org_id;
  return coalesce(v_member, false);
end;
$function$;
revoke execute on function public.booking_cron_may_act(uuid) from public;

-- function public.booking_cron_record_pack_change()
CREATE OR REPLACE FUNCTION public.booking_cron_record_pack_change()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  v_delta int;
begin
  if current_setting('booking_cron.ledger_write', true) = 'on' then
    return null;
  end if;
  v_delta := coalesce(new.sessions_used, 0)
           - case when tg_op = 'UPDATE' then coalesce(old.sessions_used, 0) else 0 end;
  if v_delta <> 0 then
    insert into public.session_usage (org_id, client_id, purchase_id, session_date, sessions, source)
    values (new.org_id, new.client_id, new.id, current_date, v_delta,
            case when tg_op = 'INSERT' then 'opening' else 'adjustment' end);
  end if;
  return null;
end;
$function$;
revoke execute on function public.booking_cron_record_pack_change() from public;

-- function public.booking_cron_require_member(uuid,text)
CREATE OR REPLACE FUNCTION public.booking_cron_require_member(p_org_id uuid, p_what text)
 RETURNS void
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
begin
  if not public.booking_cron_may_act(p_org_id) then
    raise exception 'permission denied: % belongs to an org you are not a member of', p_what
      using errcode = 'insufficient_privilege';
  end if;
end;
$function$;
revoke execute on function public.booking_cron_require_member(uuid,text) from public;

-- function public.booking_cron_stamp_cancelled_at()
CREATE OR REPLACE FUNCTION public.booking_cron_stamp_cancelled_at()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
begin
  if new.status = 'cancelled' and new.cancelled_at is null then
    new.cancelled_at := now();
  end if;
  return new;
end;
$function$;
revoke execute on function public.booking_cron_stamp_cancelled_at() from public;

-- function public.complete_booking(uuid)
CREATE OR REPLACE FUNCTION public.complete_booking(p_booking_id uuid)
 RETURNS text
 LANGUAGE sql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  insert into booking_cron.api_calls (call, booking_id) values ('complete_booking', p_booking_id)
  returning outcome
$function$;
revoke execute on function public.complete_booking(uuid) from public;

-- function public.release_session(uuid)
CREATE OR REPLACE FUNCTION public.release_session(p_purchase_id uuid)
 RETURNS integer
 LANGUAGE sql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  insert into booking_cron.api_calls (call, purchase_id) values ('release_session_legacy', p_purchase_id)
  returning outcome::integer
$function$;
revoke execute on function public.release_session(uuid) from public;

-- function public.release_session(uuid,uuid)
CREATE OR REPLACE FUNCTION public.release_session(p_purchase_id uuid, p_booking_id uuid)
 RETURNS text
 LANGUAGE sql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  insert into booking_cron.api_calls (call, purchase_id, booking_id)
  values ('release_session', p_purchase_id, p_booking_id)
  returning outcome
$function$;
revoke execute on function public.release_session(uuid,uuid) from public;

-- function public.release_sessions(uuid[],uuid[])
CREATE OR REPLACE FUNCTION public.release_sessions(p_purchase_ids uuid[], p_booking_ids uuid[])
 RETURNS TABLE(booking_id uuid, purchase_id uuid, outcome text)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
#variable_conflict use_column
declare
  v_mark text := coalesce(current_setting('booking_cron.ledger_write', true), '');
begin
  if coalesce(array_length(p_purchase_ids, 1), 0) <> coalesce(array_length(p_booking_ids, 1), 0) then
    raise exception 'release_sessions: % purchase ids for % booking ids',
      array_length(p_purchase_ids, 1), array_length(p_booking_ids, 1);
  end if;

  perform set_config('booking_cron.ledger_write', 'on', true);
  perform 1 from public.client_purchases cp
  where cp.id = any(p_purchase_ids)
  order by cp.id
  for update;

  return query
  with input as (
    select distinct on (t.b) t.p, t.b
    from unnest(p_purchase_ids, p_booking_ids) as t(p, b)
    order by t.b
  ),
  released as (
    update public.session_usage su
    set released_at = now()
    from input i
    where su.booking_id = i.b and su.purchase_id = i.p and su.released_at is null
    returning su.booking_id, su.purchase_id, su.sessions
  ),
  counted as (
    update public.client_purchases cp
    set sessions_used = coalesce(cp.sessions_used, 0) - n.sessions
    from (select r.purchase_id, sum(r.sessions)::int as sessions from released r group by r.purchase_id) n
    where cp.id = n.purchase_id
    returning cp.id
  )
  select i.b, i.p,
         case when r.booking_id is not null then 'released'
              when exists (select 1 from public.session_usage su where su.booking_id = i.b and su.purchase_id = i.p)
                then 'already_released'
              else 'not_deducted' end
  from input i
  left join released r on r.booking_id = i.b;
  perform set_config('booking_cron.ledger_write', v_mark, true);
end;
$function$;
revoke execute on function public.release_sessions(uuid[],uuid[]) from public;
grant execute on function public.release_sessions(uuid[],uuid[]) to booking_cron_tick;

-- function public.use_session(uuid)
CREATE OR REPLACE FUNCTION public.use_session(p_purchase_id uuid)
 RETURNS boolean
 LANGUAGE sql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  insert into booking_cron.api_calls (call, purchase_id) values ('use_session_legacy', p_purchase_id)
  returning outcome::boolean
$function$;
revoke execute on function public.use_session(uuid) from public;

-- function public.use_session(uuid,uuid)
CREATE OR REPLACE FUNCTION public.use_session(p_purchase_id uuid, p_booking_id uuid)
 RETURNS text
 LANGUAGE sql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  insert into booking_cron.api_calls (call, purchase_id, booking_id) values ('use_session', p_purchase_id, p_booking_id)
  returning outcome
$function$;
revoke execute on function public.use_session(uuid,uuid) from public;

-- function public.use_sessions(uuid[],uuid[])
CREATE OR REPLACE FUNCTION public.use_sessions(p_purchase_ids uuid[], p_booking_ids uuid[])
 RETURNS TABLE(booking_id uuid, purchase_id uuid, outcome text)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
#variable_conflict use_column
declare
  v_mark text := coalesce(current_setting('booking_cron.ledger_write', true), '');
begin
  if coalesce(array_length(p_purchase_ids, 1), 0) <> coalesce(array_length(p_booking_ids, 1), 0) then
    raise exception 'use_sessions: % purchase ids for % booking ids',
      array_length(p_purchase_ids, 1), array_length(p_booking_ids, 1);
  end if;

  perform set_config('booking_cron.ledger_write', 'on', true);
  -- Lock the packs in id order: concurrent batches serialise per pack and cannot deadlock.
  -- The next statement takes its snapshot after the locks, so it sees every committed deduction.
  perform 1 from public.client_purchases cp
  where cp.id = any(p_purchase_ids)
  order by cp.id
  for update;

  return query
  with input as (
    select distinct on (t.b) t.p, t.b
    from unnest(p_purchase_ids, p_booking_ids) as t(p, b)
    order by t.b
  ),
  judged as (
    select i.b, i.p, bk.org_id, bk.client_id, bk.start_time, bk.end_time,
           coalesce(cp.sessions_used, 0) as used, cp.sessions_total as total,
           case
             when bk.id is null then 'booking_not_found'
             when bk.purchase_id is distinct from i.p then 'purchase_mismatch'
             when cp.id is null then 'not_found'
             when su.booking_id is not null then 'already_deducted'
             when cp.client_id <> bk.client_id or cp.org_id <> bk.org_id then 'purchase_mismatch'
             when cp.payment_status is distinct from 'succeeded' then 'unpaid'
             when cp.sessions_total is null or cp.sessions_total <= 0 then 'not_a_pack'
             when cp.expires_at is not null and cp.expires_at < bk.end_time then 'expired'
             else 'eligible'
           end as verdict
    from input i
    left join public.bookings bk on bk.id = i.b
    left join public.client_purchases cp on cp.id = i.p
    left join public.session_usage su on su.booking_id = i.b and su.released_at is null
  ),
  ranked as (
    -- earlier sessions take a pack's last places first
    select j.*, row_number() over (partition by j.p, j.verdict = 'eligible' order by j.end_time, j.b) as place
    from judged j
  ),
  decided as (
    select r.*,
           case
             when r.verdict <> 'eligible' then r.verdict
             when r.used + r.place <= r.total then 'deducted'
             else 'exhausted'
           end as result
    from ranked r
  ),
  ledger as (
    insert into public.session_usage as su (org_id, client_id, purchase_id, booking_id, session_date, sessions, source,
                                            pack_total, pack_used_after)
    select d.org_id, d.client_id, d.p, d.b, (d.start_time at time zone 'UTC')::date, 1, 'booking', d.total, d.used + d.place
    from decided d
    where d.result = 'deducted'
    on conflict (booking_id) where booking_id is not null do update
      set released_at = null, purchase_id = excluded.purchase_id, org_id = excluded.org_id,
          client_id = excluded.client_id, session_date = excluded.session_date, sessions = 1,
          pack_total = excluded.pack_total, pack_used_after = excluded.pack_used_after
      where su.released_at is not null
    returning su.booking_id, su.purchase_id
  ),
  counted as (
    update public.client_purchases cp
    set sessions_used = coalesce(cp.sessions_used, 0) + n.sessions
    from (select l.purchase_id, count(*)::int as sessions from ledger l group by l.purchase_id) n
    where cp.id = n.purchase_id
    returning cp.id
  )
  select d.b, d.p,
         case when d.result = 'deducted' and l.booking_id is null then 'already_deducted'
              else d.result end
  from decided d
  left join ledger l on l.booking_id = d.b;
  perform set_config('booking_cron.ledger_write', v_mark, true);
end;
$function$;
revoke execute on function public.use_sessions(uuid[],uuid[]) from public;
grant execute on function public.use_sessions(uuid[],uuid[]) to booking_cron_tick;

-- function booking_cron.assign_settings_sender()
CREATE OR REPLACE FUNCTION booking_cron.assign_settings_sender()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
begin
  insert into booking_cron.senders (kind, sender, org_id, assigned_by)
  select v.kind, v.sender, new.org_id,
         'sms_settings written by ' || coalesce(nullif(pg_catalog.current_setting('role', true), 'none'), session_user)
  from (values ('phone', pg_catalog.regexp_replace(new.twilio_phone_number, '[^0-9+]', '', 'g'),
                tg_op = 'INSERT' or new.twilio_phone_number is distinct from old.twilio_phone_number),
               ('messaging_service', new.twilio_messaging_service_sid,
                tg_op = 'INSERT' or new.twilio_messaging_service_sid is distinct from old.twilio_messaging_service_sid))
    v(kind, sender, written)
  where v.written
    and case v.kind when 'phone' then v.sender ~ '^\+[1-9][0-9]{6,14}$' else v.sender ~ '^MG[0-9a-fA-F]{32}$' end
  on conflict (kind, sender) do nothing;
  return null;
end;
$function$;
revoke execute on function booking_cron.assign_settings_sender() from public;

-- function booking_cron.caller_is_client(uuid)
CREATE OR REPLACE FUNCTION booking_cron.caller_is_client(p_client_id uuid)
 RETURNS boolean
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  v_own boolean;
begin
  -- the app links a client's login to its client row (clients.auth_user_id = auth.uid())
  if to_regprocedure('auth.uid()') is null or not exists (
      select 1 from pg_catalog.pg_attribute a
      where a.attrelid = 'public.clients'::regclass and a.attname = 'auth_user_id' and not a.attisdropped) then
    return false;
  end if;
  execute 'select exists (select 1 from public.clients c where c.id = $1 and c.auth_user_id = auth.uid())'
    into v_own using p_client_id;
  return coalesce(v_own, false);
end;
$function$;
revoke execute on function booking_cron.caller_is_client(uuid) from public;

-- function booking_cron.claimed_sender(text,text)
CREATE OR REPLACE FUNCTION booking_cron.claimed_sender(p_phone text, p_service text, OUT kind text, OUT sender text)
 RETURNS record
 LANGUAGE sql
 IMMUTABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select case when coalesce(p_service, '') <> '' then 'messaging_service'
              when coalesce(p_phone, '') <> '' then 'phone' end,
         case when coalesce(p_service, '') <> '' then p_service
              when coalesce(p_phone, '') <> '' then pg_catalog.regexp_replace(p_phone, '[^0-9+]', '', 'g') end
$function$;
revoke execute on function booking_cron.claimed_sender(text,text) from public;
grant execute on function booking_cron.claimed_sender(text,text) to booking_cron_tick;

-- function booking_cron.complete_booking(uuid)
CREATE OR REPLACE FUNCTION booking_cron.complete_booking(p_booking_id uuid)
 RETURNS text
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  v_org uuid;
  v_purchase_id uuid;
begin
  select b.org_id into v_org from public.bookings b where b.id = p_booking_id;
  if not found then
    return 'not_confirmed';
  end if;
  perform public.booking_cron_require_member(v_org, 'this booking');
  update public.bookings b
  set status = 'completed', updated_at = now()
  where b.id = p_booking_id and b.status = 'confirmed'
  returning b.purchase_id into v_purchase_id;
  if not found then
    return 'not_confirmed';
  end if;
  if v_purchase_id is null then
    return 'no_pack';
  end if;
  return (select u.outcome from public.use_sessions(array[v_purchase_id], array[p_booking_id]) u);
end;
$function$;
revoke execute on function booking_cron.complete_booking(uuid) from public;

-- function booking_cron.guard_booking_write()
CREATE OR REPLACE FUNCTION booking_cron.guard_booking_write()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  v_member boolean := public.booking_cron_may_act(new.org_id)
                      and (tg_op = 'INSERT' or public.booking_cron_may_act(old.org_id));
begin
  if tg_op = 'UPDATE' and not v_member then
    -- a client (or anyone not a member of the booking's org before and after): cancel an upcoming
    -- booking, change nothing that decides what is deducted
    if new.org_id is distinct from old.org_id then
      raise exception 'permission denied: bookings can only be moved between orgs you are a member of'
        using errcode = 'insufficient_privilege';
    end if;
    if new.client_id is distinct from old.client_id or new.purchase_id is distinct from old.purchase_id
       or new.start_time is distinct from old.start_time or new.end_time is distinct from old.end_time then
      raise exception 'permission denied: only the org''s trainers can change a booking''s client, pack or times'
        using errcode = 'insufficient_privilege';
    end if;
    if new.status is distinct from old.status then
      if not (new.status = 'cancelled' and old.status in ('pending', 'confirmed') and old.start_time > now()) then
        raise exception 'permission denied: you can cancel a booking before it starts; only the org''s trainers can change it from % to %',
          old.status, new.status using errcode = 'insufficient_privilege';
      end if;
      new.cancelled_at := now();
    elsif new.cancelled_at is distinct from old.cancelled_at then
      raise exception 'permission denied: only the org''s trainers can change when a booking was cancelled'
        using errcode = 'insufficient_privilege';
    end if;
    return new;
  end if;

  if tg_op = 'INSERT' and not v_member then
    -- a client booking themselves (the app's client booking page): their own client row, an upcoming
    -- session, not completed or cancelled yet
    if not booking_cron.caller_is_client(new.client_id) then
      raise exception 'permission denied: bookings can only be made in an org you are a member of, or for yourself'
        using errcode = 'insufficient_privilege';
    end if;
    if new.status not in ('pending', 'confirmed') or new.start_time <= now() or new.cancelled_at is not null then
      raise exception 'permission denied: you can book yourself an upcoming session only'
        using errcode = 'insufficient_privilege';
    end if;
  end if;

  if tg_op = 'INSERT' or new.org_id is distinct from old.org_id or new.client_id is distinct from old.client_id
     or new.purchase_id is distinct from old.purchase_id then
    if not exists (select 1 from public.clients c where c.id = new.client_id and c.org_id = new.org_id) then
      raise exception 'permission denied: the booking''s client is not a client of its org'
        using errcode = 'insufficient_privilege';
    end if;
    if new.purchase_id is not null and not exists (
        select 1 from public.client_purchases cp
        where cp.id = new.purchase_id and cp.org_id = new.org_id and cp.client_id = new.client_id) then
      raise exception 'permission denied: the booking''s pack is not one of its client''s packs in its org'
        using errcode = 'insufficient_privilege';
    end if;
  end if;
  -- a cancellation's time is when the database learned of it, also for trainers: the tick gives
  -- sessions back and the audit judges texts against it
  if new.status = 'cancelled' and (tg_op = 'INSERT' or old.status is distinct from 'cancelled') then
    new.cancelled_at := now();
  elsif tg_op = 'UPDATE' and new.cancelled_at is distinct from old.cancelled_at and new.status = 'cancelled' then
    raise exception 'permission denied: a cancellation''s time is when it was made'
      using errcode = 'insufficient_privilege';
  end if;
  return new;
end;
$function$;
revoke execute on function booking_cron.guard_booking_write() from public;

-- function booking_cron.guard_client_write()
CREATE OR REPLACE FUNCTION booking_cron.guard_client_write()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
begin
  if new.org_id is distinct from old.org_id
     and not (public.booking_cron_may_act(old.org_id) and public.booking_cron_may_act(new.org_id)) then
    raise exception 'permission denied: only members of both orgs can move a client between them'
      using errcode = 'insufficient_privilege';
  end if;
  return new;
end;
$function$;
revoke execute on function booking_cron.guard_client_write() from public;

-- function booking_cron.jwt_subject()
CREATE OR REPLACE FUNCTION booking_cron.jwt_subject()
 RETURNS text
 LANGUAGE plpgsql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
begin
  return nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub';
exception when others then
  return null;
end;
$function$;
revoke execute on function booking_cron.jwt_subject() from public;

-- function booking_cron.release_session(uuid)
CREATE OR REPLACE FUNCTION booking_cron.release_session(p_purchase_id uuid)
 RETURNS integer
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  v_org uuid;
  v_booking uuid;
  v_used int;
  v_mark text := coalesce(current_setting('booking_cron.ledger_write', true), '');
  v_given boolean;
begin
  select cp.org_id into v_org from public.client_purchases cp where cp.id = p_purchase_id for update;
  if not found then
    return -1;
  end if;
  perform public.booking_cron_require_member(v_org, 'this pack');

  select su.booking_id into v_booking
  from public.session_usage su join public.bookings b on b.id = su.booking_id
  where su.purchase_id = p_purchase_id and su.released_at is null and b.status = 'cancelled'
  order by su.created_at, su.booking_id
  limit 1;

  if v_booking is not null then
    perform 1 from public.release_sessions(array[p_purchase_id], array[v_booking]);
  else
    perform set_config('booking_cron.ledger_write', 'on', true);
    with given as (
      update public.client_purchases cp
      set sessions_used = cp.sessions_used - 1
      where cp.id = p_purchase_id and cp.sessions_used > 0
      returning cp.id, cp.org_id, cp.client_id
    )
    insert into public.session_usage (org_id, client_id, purchase_id, session_date, sessions, source)
    select g.org_id, g.client_id, g.id, current_date, -1, 'release' from given g;
    v_given := found;
    perform set_config('booking_cron.ledger_write', v_mark, true);
    if not v_given then
      return -1;
    end if;
  end if;
  select cp.sessions_used into v_used from public.client_purchases cp where cp.id = p_purchase_id;
  return v_used;
end;
$function$;
revoke execute on function booking_cron.release_session(uuid) from public;

-- function booking_cron.release_session(uuid,uuid)
CREATE OR REPLACE FUNCTION booking_cron.release_session(p_purchase_id uuid, p_booking_id uuid)
 RETURNS text
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  v_org uuid;
begin
  select cp.org_id into v_org from public.client_purchases cp where cp.id = p_purchase_id;
  if not found then
    return 'not_found';
  end if;
  perform public.booking_cron_require_member(v_org, 'this pack');
  return (select r.outcome from public.release_sessions(array[p_purchase_id], array[p_booking_id]) r);
end;
$function$;
revoke execute on function booking_cron.release_session(uuid,uuid) from public;

-- function booking_cron.sender_assigned(uuid,text,text)
CREATE OR REPLACE FUNCTION booking_cron.sender_assigned(p_org_id uuid, p_phone text, p_service text)
 RETURNS boolean
 LANGUAGE sql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select exists (
    select 1 from booking_cron.claimed_sender(p_phone, p_service) c
    join booking_cron.senders s on s.kind = c.kind and s.sender = c.sender
    where s.org_id = p_org_id)
$function$;
revoke execute on function booking_cron.sender_assigned(uuid,text,text) from public;
grant execute on function booking_cron.sender_assigned(uuid,text,text) to booking_cron_tick;

-- function booking_cron.serve_api_call()
CREATE OR REPLACE FUNCTION booking_cron.serve_api_call()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
begin
  new.called_at := now();
  new.caller_role := current_setting('role', true);
  new.caller_user := booking_cron.jwt_subject();
  new.outcome := case new.call
    when 'complete_booking' then booking_cron.complete_booking(new.booking_id)
    when 'use_session' then booking_cron.use_session(new.purchase_id, new.booking_id)
    when 'use_session_legacy' then booking_cron.use_session(new.purchase_id)::text
    when 'release_session' then booking_cron.release_session(new.purchase_id, new.booking_id)
    when 'release_session_legacy' then booking_cron.release_session(new.purchase_id)::text
  end;
  return new;
end;
$function$;
revoke execute on function booking_cron.serve_api_call() from public;

-- function booking_cron.stamp_queued_by()
CREATE OR REPLACE FUNCTION booking_cron.stamp_queued_by()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
begin
  new.queued_by := current_setting('role', true);
  return new;
end;
$function$;
revoke execute on function booking_cron.stamp_queued_by() from public;

-- function booking_cron.stamp_suppression()
CREATE OR REPLACE FUNCTION booking_cron.stamp_suppression()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
begin
  if tg_op = 'INSERT' or new.phone is distinct from old.phone or new.org_id is distinct from old.org_id
     or new.created_at is distinct from old.created_at then
    new.created_at := now();
  end if;
  return new;
end;
$function$;
revoke execute on function booking_cron.stamp_suppression() from public;

-- function booking_cron.take_send_slot(text,double precision,text,double precision)
CREATE OR REPLACE FUNCTION booking_cron.take_send_slot(p_sender text, p_sender_rate double precision, p_account text, p_account_rate double precision)
 RETURNS double precision
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  v_keys text[] := array['account:' || coalesce(p_account, ''), 'sender:' || coalesce(p_sender, '')];
  v_rates double precision[] := array[p_account_rate, p_sender_rate];
  v_next timestamptz;
  v_slot timestamptz;
  v_now timestamptz;
begin
  insert into booking_cron.send_slots (key, next_at)
  select k, '-infinity' from unnest(v_keys) k
  on conflict (key) do nothing;
  -- account first, then sender: every caller locks in this order
  perform 1 from booking_cron.send_slots where key = v_keys[1] for update;
  perform 1 from booking_cron.send_slots where key = v_keys[2] for update;
  v_now := clock_timestamp();  -- after the locks: a caller that waited takes a slot from now, not from before
  v_slot := v_now;
  for i in 1..2 loop
    if v_rates[i] > 0 then
      select next_at into v_next from booking_cron.send_slots where key = v_keys[i];
      v_slot := greatest(v_slot, v_next);
    end if;
  end loop;
  for i in 1..2 loop
    if v_rates[i] > 0 then
      update booking_cron.send_slots
      set next_at = v_slot + make_interval(secs => 1.0 / v_rates[i])
      where key = v_keys[i];
    end if;
  end loop;
  return greatest(extract(epoch from v_slot - v_now)::double precision, 0.0);
end;
$function$;
revoke execute on function booking_cron.take_send_slot(text,double precision,text,double precision) from public;
grant execute on function booking_cron.take_send_slot(text,double precision,text,double precision) to booking_cron_tick;

-- function booking_cron.use_session(uuid)
CREATE OR REPLACE FUNCTION booking_cron.use_session(p_purchase_id uuid)
 RETURNS boolean
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  v_org uuid;
  v_mark text := coalesce(current_setting('booking_cron.ledger_write', true), '');
  v_taken boolean;
begin
  select cp.org_id into v_org from public.client_purchases cp where cp.id = p_purchase_id;
  if not found then
    return false;
  end if;
  perform public.booking_cron_require_member(v_org, 'this pack');
  perform set_config('booking_cron.ledger_write', 'on', true);
  with taken as (
    update public.client_purchases cp
    set sessions_used = coalesce(cp.sessions_used, 0) + 1
    where cp.id = p_purchase_id
      and cp.sessions_total is not null
      and coalesce(cp.sessions_used, 0) < cp.sessions_total
      and (cp.expires_at is null or cp.expires_at >= now())
    returning cp.id, cp.org_id, cp.client_id
  )
  insert into public.session_usage (org_id, client_id, purchase_id, session_date, sessions, source)
  select t.org_id, t.client_id, t.id, current_date, 1, 'legacy' from taken t;
  v_taken := found;
  perform set_config('booking_cron.ledger_write', v_mark, true);
  return v_taken;
end;
$function$;
revoke execute on function booking_cron.use_session(uuid) from public;

-- function booking_cron.use_session(uuid,uuid)
CREATE OR REPLACE FUNCTION booking_cron.use_session(p_purchase_id uuid, p_booking_id uuid)
 RETURNS text
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  v_org uuid;
begin
  select coalesce((select b.org_id from public.bookings b where b.id = p_booking_id),
                  (select cp.org_id from public.client_purchases cp where cp.id = p_purchase_id))
  into v_org;
  if v_org is not null then
    perform public.booking_cron_require_member(v_org, 'this booking');
  end if;
  return (select u.outcome from public.use_sessions(array[p_purchase_id], array[p_booking_id]) u);
end;
$function$;
revoke execute on function booking_cron.use_session(uuid,uuid) from public;
