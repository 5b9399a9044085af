-- The seed app's tables, for a database that does not have them yet.
-- Shapes follow the app (Morgs-75/coach-os) closely enough that the same code runs
-- against either; on an existing app database every statement here is a no-op.

create table if not exists public.orgs (
  id uuid primary key default gen_random_uuid(),
  name text not null,
  created_at timestamptz not null default now()
);

create table if not exists public.booking_settings (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null unique references public.orgs(id) on delete cascade,
  timezone text not null default 'Australia/Brisbane',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

create table if not exists public.clients (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.orgs(id) on delete cascade,
  full_name text not null,
  email text,
  phone text,
  status text not null default 'active',
  created_at timestamptz not null default now()
);

create table if not exists public.client_purchases (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.orgs(id) on delete cascade,
  client_id uuid not null references public.clients(id) on delete cascade,
  sessions_total int,
  sessions_used int default 0,
  purchased_at timestamptz not null default now(),
  expires_at timestamptz,
  payment_status text default 'pending'
    check (payment_status in ('pending', 'succeeded', 'failed', 'refunded')),
  created_at timestamptz not null default now()
);

create table if not exists public.bookings (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.orgs(id) on delete cascade,
  client_id uuid not null references public.clients(id) on delete cascade,
  purchase_id uuid references public.client_purchases(id),
  start_time timestamptz not null,
  end_time timestamptz not null,
  location_type text not null default 'in_person',
  status text not null default 'confirmed'
    check (status in ('pending', 'confirmed', 'cancelled', 'completed', 'no_show')),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

create table if not exists public.session_usage (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.orgs(id) on delete cascade,
  client_id uuid not null references public.clients(id) on delete cascade,
  purchase_id uuid references public.client_purchases(id),
  session_date date not null default current_date,
  created_at timestamptz not null default now()
);

create table if not exists public.sms_settings (
  org_id uuid primary key references public.orgs(id) on delete cascade,
  twilio_messaging_service_sid text,
  twilio_phone_number text,
  quiet_hours_start int default 21 check (quiet_hours_start between 0 and 23),
  quiet_hours_end int default 8 check (quiet_hours_end between 0 and 23),
  max_sms_per_hour int default 100,
  max_sms_per_client_per_day int default 5,
  enabled boolean not null default true,
  updated_at timestamptz not null default now()
);

create table if not exists public.sms_schedules (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.orgs(id) on delete cascade,
  type text not null check (type in ('pre_session', 'post_session')),
  label text not null default '',
  mins_offset int not null default 60,
  body text not null,
  enabled boolean not null default true,
  created_at timestamptz not null default now()
);

create table if not exists public.sms_messages (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.orgs(id) on delete cascade,
  client_id uuid references public.clients(id) on delete cascade,
  to_phone text not null,
  from_phone text not null default '',
  body text not null,
  related_entity_type text,
  related_entity_id uuid,
  status text not null default 'pending',
  scheduled_for timestamptz not null default now(),
  sent_at timestamptz,
  idempotency_key text unique,
  error_code text,
  error_message text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

create table if not exists public.sms_suppression (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.orgs(id) on delete cascade,
  phone text not null,
  reason text not null check (reason in ('opt_out', 'invalid_number', 'carrier_violation', 'manual')),
  created_at timestamptz not null default now(),
  constraint unique_phone_per_org unique (org_id, phone)
);
