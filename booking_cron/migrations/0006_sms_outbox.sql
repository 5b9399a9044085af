-- The SMS outbox as the texts step uses it: what each text is (kind, schedule, the session it
-- is about, when it goes stale), a lease for claiming (locked_until), and the fates a text can
-- end in besides the app's: skipped (never sendable: no phone, opted out, suppressed),
-- expired (stale before it could go out) and unknown (the provider may have it; never resent).

alter table public.sms_messages add column if not exists kind text;
alter table public.sms_messages add column if not exists schedule_id uuid;
alter table public.sms_messages add column if not exists session_start timestamptz;
alter table public.sms_messages add column if not exists expires_at timestamptz;
alter table public.sms_messages add column if not exists locked_until timestamptz;
alter table public.sms_messages add column if not exists attempts int not null default 0;
alter table public.sms_messages add column if not exists error_message text;
alter table public.sms_messages add column if not exists flow_run_id uuid;
alter table public.sms_messages add column if not exists from_phone text not null default '';
alter table public.sms_messages add column if not exists messaging_service_sid text;
alter table public.bookings add column if not exists cancelled_at timestamptz;

do $$
declare
  v_name text;
begin
  for v_name in
    select c.conname from pg_constraint c
    where c.conrelid = 'public.sms_messages'::regclass and c.contype = 'c'
      and pg_get_constraintdef(c.oid) like '%status%'
  loop
    execute format('alter table public.sms_messages drop constraint %I', v_name);
  end loop;
end;
$$;

alter table public.sms_messages add constraint sms_messages_status_check check (status in (
  'pending', 'queued', 'sending', 'sent', 'delivered', 'failed', 'cancelled',
  'skipped', 'expired', 'unknown'));

create index if not exists sms_messages_due_idx
  on public.sms_messages (scheduled_for) where status in ('queued', 'sending');
create index if not exists sms_messages_entity_idx on public.sms_messages (related_entity_id);
create index if not exists sms_messages_sent_idx on public.sms_messages (org_id, sent_at) where sent_at is not null;
