-- The texts clients send back (Twilio's inbound webhook): every reply is recorded once (keyed by
-- Twilio's MessageSid, so a replayed webhook changes nothing), with what it did. Opt-outs and
-- opt-ins recorded here also let `audit` check that nothing was sent after an opt-out.
-- booking-cron's own table: row-level security without a policy keeps it from the app's API roles.

create table if not exists public.sms_inbound (
  id uuid primary key default gen_random_uuid(),
  message_sid text not null unique,
  from_phone text not null,
  to_phone text not null,
  org_ids uuid[] not null default '{}',
  body text not null default '',
  action text not null check (action in ('opt_out', 'opt_in', 'confirm', 'other')),
  outcome text,
  received_at timestamptz not null default now()
);

create index if not exists sms_inbound_from_idx on public.sms_inbound (from_phone, received_at);

alter table public.sms_inbound enable row level security;
