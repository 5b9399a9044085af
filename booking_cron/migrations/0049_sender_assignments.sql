-- An org sends from, and receives replies on, only the senders the platform assigned to it.
--
-- booking-cron sends every org's texts through one Twilio account, from the sender the org's
-- sms_settings name (its messaging service when set, else its number). The app lets an org's
-- trainers write their own sms_settings, so a trainer could name another org's number: the tick
-- then texted as that org, and replies to that number were routed to the trainer's org too.
--
-- Now sms_settings only *claim* a sender; booking_cron.senders records which org each sender is
-- *assigned* to, one org per sender:
-- * the platform assigns: a write of sms_settings' twilio_phone_number or
--   twilio_messaging_service_sid by anyone but an API user (service_role, as the app's edge
--   functions provision numbers; the owner) assigns that sender to the org, unless another org has
--   it already (then the claim is a conflict for an operator); `booking-cron senders assign`
--   assigns explicitly. Writes by `anon` and `authenticated` assign nothing, and no API role can
--   read or write the table (post-apply-api-lockdown.sql).
-- * this upgrade adopts every sender that exactly one org's sms_settings claim (an operator
--   running `db upgrade` is the platform); a sender several orgs claim is assigned to none.
-- * a text goes out only from a sender assigned to its org; the others wait in the outbox, with
--   the reason sender_not_assigned, until the platform assigns it (booking_cron/sms/outbox.py).
-- * a reply is routed only to the org its number or messaging service is assigned to.

create table if not exists booking_cron.senders (
  kind text not null check (kind in ('phone', 'messaging_service')),
  sender text not null,
  org_id uuid not null references public.orgs(id) on delete cascade,
  assigned_at timestamptz not null default now(),
  assigned_by text not null,
  primary key (kind, sender),
  constraint senders_form check (case kind when 'phone' then sender ~ '^\+[1-9][0-9]{6,14}$'
                                           else sender ~ '^MG[0-9a-fA-F]{32}$' end)
);
create index if not exists senders_org_id on booking_cron.senders (org_id);
alter table booking_cron.senders enable row level security;
revoke all on booking_cron.senders from public;

-- The sender that sms_settings (or an outbox row) name: the messaging service when set, else the
-- number with its formatting removed; as the sender picks it (sms/gateway.py). Null: none named.
create or replace function booking_cron.claimed_sender(p_phone text, p_service text, out kind text, out sender text)
returns record
language sql
immutable
set search_path = pg_catalog, pg_temp
as $$
  select case when coalesce(p_service, '') <> '' then 'messaging_service'
              when coalesce(p_phone, '') <> '' then 'phone' end,
         case when coalesce(p_service, '') <> '' then p_service
              when coalesce(p_phone, '') <> '' then pg_catalog.regexp_replace(p_phone, '[^0-9+]', '', 'g') end
$$;

-- Whether that sender is assigned to the org: the one rule for sending (outbox) and for doctor.
create or replace function booking_cron.sender_assigned(p_org_id uuid, p_phone text, p_service text)
returns boolean
language sql
stable
set search_path = pg_catalog, pg_temp
as $$
  select exists (
    select 1 from booking_cron.claimed_sender(p_phone, p_service) c
    join booking_cron.senders s on s.kind = c.kind and s.sender = c.sender
    where s.org_id = p_org_id)
$$;

-- The platform's writes of an org's sender assign it (never an API user's: see the trigger's when).
-- Only a value this write sets: a platform write of the whole row (quiet hours, say) does not
-- turn what a trainer typed earlier into an assignment. A sender another org has stays that
-- org's; assignments are never taken away here, so texts waiting on an org's former number still
-- go and replies to it still reach the org (an operator frees a number with `senders unassign`).
create or replace function booking_cron.assign_settings_sender()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
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
$$;

revoke execute on function booking_cron.claimed_sender(text, text) from public;
revoke execute on function booking_cron.sender_assigned(uuid, text, text) from public;
revoke execute on function booking_cron.assign_settings_sender() from public;

drop trigger if exists booking_cron_assign_settings_sender on public.sms_settings;
create trigger booking_cron_assign_settings_sender
  after insert or update of twilio_phone_number, twilio_messaging_service_sid on public.sms_settings
  for each row when (coalesce(current_setting('role', true), 'none') not in ('anon', 'authenticated'))
  execute function booking_cron.assign_settings_sender();

-- Adopt what existing installs have: each sender that exactly one org claims, in either column.
insert into booking_cron.senders (kind, sender, org_id, assigned_by)
select v.kind, v.sender, (array_agg(s.org_id))[1], 'db upgrade: the only org whose sms_settings named it'
from public.sms_settings s
cross join lateral (values ('phone', regexp_replace(s.twilio_phone_number, '[^0-9+]', '', 'g')),
                           ('messaging_service', s.twilio_messaging_service_sid)) v(kind, sender)
where case v.kind when 'phone' then v.sender ~ '^\+[1-9][0-9]{6,14}$' else v.sender ~ '^MG[0-9a-fA-F]{32}$' end
group by v.kind, v.sender
having count(distinct s.org_id) = 1
on conflict (kind, sender) do nothing;

-- The tick checks assignments before it sends.
grant usage on schema booking_cron to booking_cron_tick;
grant select on booking_cron.senders to booking_cron_tick;
grant execute on function booking_cron.claimed_sender(text, text), booking_cron.sender_assigned(uuid, text, text)
  to booking_cron_tick;
drop policy if exists booking_cron_tick on booking_cron.senders;
create policy booking_cron_tick on booking_cron.senders for select to booking_cron_tick using (true);
