-- Columns the contract relies on that older app databases may lack.
-- Added with the app's own defaults, so existing rows keep their meaning.

alter table public.booking_settings add column if not exists timezone text not null default 'Australia/Brisbane';
alter table public.clients add column if not exists phone text;
alter table public.clients add column if not exists sms_reminder_enabled boolean not null default true;
alter table public.clients add column if not exists sms_followup_enabled boolean not null default true;
alter table public.client_purchases add column if not exists expires_at timestamptz;
alter table public.bookings add column if not exists purchase_id uuid references public.client_purchases(id);
alter table public.bookings add column if not exists client_confirmed boolean default false;
alter table public.bookings add column if not exists confirmation_sent_at timestamptz;
alter table public.bookings add column if not exists location_type text not null default 'in_person';
alter table public.bookings add column if not exists updated_at timestamptz not null default now();
alter table public.sms_settings add column if not exists twilio_messaging_service_sid text;
alter table public.sms_settings add column if not exists twilio_phone_number text;
alter table public.sms_settings add column if not exists max_sms_per_hour int default 100;
alter table public.sms_settings add column if not exists max_sms_per_client_per_day int default 5;
alter table public.sms_messages add column if not exists provider_message_id text;
alter table public.sms_messages add column if not exists error_code text;
alter table public.sms_messages add column if not exists sent_at timestamptz;

-- The tick looks for confirmed bookings that have ended; keep that a short index scan.
create index if not exists bookings_confirmed_end_time_idx
  on public.bookings (end_time) where status = 'confirmed';
create index if not exists bookings_purchase_id_idx on public.bookings (purchase_id);
