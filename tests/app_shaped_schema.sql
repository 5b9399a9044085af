-- An existing database of the seed app, before booking-cron: the app's tables with its extra
-- NOT NULL columns, a generated column, row-level security, its original one-argument
-- use_session (read-then-write), and no ledger link, no timezone, no SMS preferences yet.
create table orgs (id uuid primary key default gen_random_uuid(), name text not null, slug text not null unique,
                   created_at timestamptz not null default now());
create table clients (id uuid primary key default gen_random_uuid(), org_id uuid not null references orgs(id) on delete cascade,
                      full_name text not null, email text, phone text, status text not null default 'active',
                      created_at timestamptz not null default now());
create table offers (id uuid primary key default gen_random_uuid(), org_id uuid not null references orgs(id),
                     name text not null, offer_type text not null, price_cents int not null);
create table client_purchases (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references orgs(id) on delete cascade,
  client_id uuid not null references clients(id) on delete cascade,
  offer_id uuid not null references offers(id),
  amount_paid_cents int not null,
  currency text not null default 'aud',
  sessions_total int,
  sessions_used int default 0,
  sessions_remaining int generated always as (sessions_total - sessions_used) stored,
  purchased_at timestamptz not null default now(),
  expires_at timestamptz,
  payment_status text default 'pending' check (payment_status in ('pending', 'succeeded', 'failed', 'refunded')),
  created_at timestamptz not null default now());
create table session_usage (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references orgs(id) on delete cascade,
  client_id uuid not null references clients(id) on delete cascade,
  purchase_id uuid references client_purchases(id),
  subscription_id uuid,
  session_date date not null,
  session_type text,
  created_at timestamptz not null default now());
create table bookings (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references orgs(id) on delete cascade,
  client_id uuid not null references clients(id) on delete cascade,
  start_time timestamptz not null,
  end_time timestamptz not null,
  duration_mins int not null default 60,
  session_type text not null default 'pt_session',
  purchase_id uuid references client_purchases(id),
  location_type text not null default 'in_person' check (location_type in ('in_person', 'online', 'outdoor')),
  status text not null default 'confirmed' check (status in ('pending', 'confirmed', 'cancelled', 'completed', 'no_show')),
  booking_source text not null default 'trainer',
  reminder_sent boolean default false,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now());
create table booking_settings (id uuid primary key default gen_random_uuid(), org_id uuid not null unique references orgs(id),
                               slot_duration_mins int default 60);
create table sms_settings (org_id uuid primary key references orgs(id), twilio_phone_number text,
                           quiet_hours_start int default 21, quiet_hours_end int default 8, timezone text default 'Australia/Sydney',
                           max_sms_per_hour int default 100, max_sms_per_client_per_day int default 5,
                           enabled boolean not null default true, updated_at timestamptz not null default now());
create table sms_messages (id uuid primary key default gen_random_uuid(), org_id uuid not null references orgs(id),
                           client_id uuid references clients(id), to_phone text not null, from_phone text not null,
                           body text not null, related_entity_type text, related_entity_id uuid,
                           status text not null default 'pending', scheduled_for timestamptz not null default now(),
                           sent_at timestamptz, idempotency_key text unique, error_code text, error_message text,
                           metadata jsonb default '{}'::jsonb, locked_until timestamptz,
                           created_at timestamptz not null default now(), updated_at timestamptz not null default now());
alter table bookings enable row level security;
alter table client_purchases enable row level security;
alter table session_usage enable row level security;

create function use_session(p_purchase_id uuid) returns boolean language plpgsql security definer as $$
declare v_remaining int; v_expires timestamptz;
begin
  select sessions_remaining, expires_at into v_remaining, v_expires from client_purchases where id = p_purchase_id;
  if v_remaining is null or v_remaining <= 0 then return false; end if;
  if v_expires is not null and v_expires < now() then return false; end if;
  update client_purchases set sessions_used = sessions_used + 1 where id = p_purchase_id;
  return true;
end $$;
