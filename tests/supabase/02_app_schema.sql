-- The app's tables that booking-cron meets, as the app's 48 migrations leave them (Morgs-75/coach-os,
-- supabase/migrations): extra NOT NULL columns, the generated sessions_remaining, the status
-- checks, row-level security and its policies (members of an org through org_members; clients
-- through auth_user_id; the onboarding page's public policies), written here from reading them.
create type public.org_role as enum ('owner', 'staff', 'accountant_readonly');

create table public.orgs (
  id uuid primary key default uuid_generate_v4(),
  created_at timestamptz not null default now(),
  name text not null,
  slug text not null unique,
  commission_rate numeric not null default 0.05
);
create table public.org_members (
  id uuid primary key default uuid_generate_v4(),
  org_id uuid not null references public.orgs(id) on delete cascade,
  user_id uuid not null,
  role public.org_role not null,
  created_at timestamptz not null default now(),
  unique (org_id, user_id)
);
create table public.platform_admins (
  id uuid primary key default uuid_generate_v4(),
  user_id uuid not null unique references auth.users(id) on delete cascade,
  email text not null
);

create function public.is_org_member(_org uuid) returns boolean language sql stable security definer as $$
  select exists (select 1 from public.org_members m where m.org_id = _org and m.user_id = auth.uid())
$$;
create function public.org_role(_org uuid) returns public.org_role language sql stable security definer as $$
  select m.role from public.org_members m where m.org_id = _org and m.user_id = auth.uid() limit 1
$$;
create function public.is_platform_admin() returns boolean language sql stable security definer as $$
  select exists (select 1 from public.platform_admins where user_id = auth.uid())
$$;

create table public.clients (
  id uuid primary key default uuid_generate_v4(),
  org_id uuid not null references public.orgs(id) on delete cascade,
  created_at timestamptz not null default now(),
  full_name text not null,
  email text,
  phone text,
  status text not null default 'active',
  auth_user_id uuid references auth.users(id),
  onboarding_token uuid,
  portal_token uuid,
  sms_reminder_enabled boolean not null default true,
  sms_followup_enabled boolean not null default true
);

create table public.offers (
  id uuid primary key default uuid_generate_v4(),
  org_id uuid not null references public.orgs(id) on delete cascade,
  name text not null,
  offer_type text not null check (offer_type in ('subscription', 'session_pack', 'single_session')),
  price_cents int not null,
  currency text not null default 'aud',
  sessions_included int,
  created_at timestamptz not null default now()
);

create table public.client_purchases (
  id uuid primary key default uuid_generate_v4(),
  org_id uuid not null references public.orgs(id) on delete cascade,
  client_id uuid not null references public.clients(id) on delete cascade,
  offer_id uuid not null references public.offers(id),
  amount_paid_cents int not null,
  currency text not null default 'aud',
  sessions_total int,
  sessions_used int default 0,
  sessions_remaining int generated always as (sessions_total - sessions_used) stored,
  purchased_at timestamptz not null default now(),
  expires_at timestamptz,
  stripe_payment_intent_id text,
  payment_status text default 'pending' check (payment_status in ('pending', 'succeeded', 'failed', 'refunded')),
  discount_cents int default 0,
  payment_method text check (payment_method in ('cash', 'card', 'bank_transfer', 'stripe')),
  session_duration_mins integer,
  created_at timestamptz not null default now()
);

create table public.session_usage (
  id uuid primary key default uuid_generate_v4(),
  org_id uuid not null references public.orgs(id) on delete cascade,
  client_id uuid not null references public.clients(id) on delete cascade,
  purchase_id uuid references public.client_purchases(id),
  subscription_id uuid,
  session_date date not null,
  session_type text,
  notes text,
  created_at timestamptz not null default now()
);

create table public.bookings (
  id uuid primary key default uuid_generate_v4(),
  org_id uuid not null references public.orgs(id) on delete cascade,
  client_id uuid not null references public.clients(id) on delete cascade,
  start_time timestamptz not null,
  end_time timestamptz not null,
  duration_mins int not null default 60,
  offer_id uuid references public.offers(id),
  session_type text not null default 'pt_session',
  purchase_id uuid references public.client_purchases(id),
  location_type text not null default 'in_person' check (location_type in ('in_person', 'online', 'outdoor')),
  location_details text,
  status text not null default 'confirmed' check (status in ('pending', 'confirmed', 'cancelled', 'completed', 'no_show')),
  cancelled_at timestamptz,
  cancelled_by uuid references auth.users(id),
  booked_by uuid references auth.users(id),
  booking_source text not null default 'trainer' check (booking_source in ('trainer', 'client', 'system')),
  reminder_sent boolean default false,
  feedback_sent boolean default false,
  client_confirmed boolean default false,
  confirmation_sent_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

create table public.booking_settings (
  id uuid primary key default uuid_generate_v4(),
  org_id uuid not null unique references public.orgs(id) on delete cascade,
  allow_client_booking boolean default true,
  slot_duration_mins int default 60,
  timezone text not null default 'Australia/Brisbane',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

create table public.sms_settings (
  org_id uuid primary key references public.orgs(id) on delete cascade,
  twilio_account_sid text,
  twilio_messaging_service_sid text,
  twilio_phone_number text,
  quiet_hours_start int default 21 check (quiet_hours_start between 0 and 23),
  quiet_hours_end int default 8 check (quiet_hours_end between 0 and 23),
  timezone text default 'Australia/Sydney',
  max_sms_per_hour int default 100,
  max_sms_per_client_per_day int default 5,
  enabled boolean not null default true,
  updated_at timestamptz not null default now()
);

create table public.sms_schedules (
  id uuid primary key default uuid_generate_v4(),
  org_id uuid not null references public.orgs(id) on delete cascade,
  type text not null check (type in ('pre_session', 'post_session')),
  label text not null,
  mins_offset int not null default 60,
  body text not null,
  enabled boolean not null default true,
  sort_order int not null default 0,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

create table public.sms_messages (
  id uuid primary key default uuid_generate_v4(),
  org_id uuid not null references public.orgs(id) on delete cascade,
  client_id uuid references public.clients(id) on delete cascade,
  to_phone text not null,
  from_phone text not null,
  template_key text,
  body text not null,
  variables jsonb,
  related_entity_type text,
  related_entity_id uuid,
  status text not null default 'pending'
    check (status in ('pending', 'queued', 'sending', 'sent', 'delivered', 'failed', 'cancelled')),
  scheduled_for timestamptz not null default now(),
  sent_at timestamptz,
  delivered_at timestamptz,
  failed_at timestamptz,
  idempotency_key text unique,
  error_code text,
  error_message text,
  metadata jsonb default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  locked_until timestamptz
);

create table public.sms_suppression (
  id uuid primary key default uuid_generate_v4(),
  org_id uuid not null references public.orgs(id) on delete cascade,
  phone text not null,
  reason text not null check (reason in ('opt_out', 'invalid_number', 'carrier_violation', 'manual')),
  source text not null default 'system',
  client_id uuid references public.clients(id) on delete set null,
  created_at timestamptz not null default now(),
  constraint unique_phone_per_org unique (org_id, phone)
);

alter table public.orgs enable row level security;
alter table public.org_members enable row level security;
alter table public.platform_admins enable row level security;
alter table public.clients enable row level security;
alter table public.offers enable row level security;
alter table public.client_purchases enable row level security;
alter table public.session_usage enable row level security;
alter table public.bookings enable row level security;
alter table public.booking_settings enable row level security;
alter table public.sms_settings enable row level security;
alter table public.sms_schedules enable row level security;
alter table public.sms_messages enable row level security;
alter table public.sms_suppression enable row level security;

create policy "orgs read by members" on public.orgs for select using (public.is_org_member(id));
create policy "orgs public read for onboarding" on public.orgs for select using (true);
create policy "orgs write by owner" on public.orgs for update
  using (public.org_role(id) = 'owner') with check (public.org_role(id) = 'owner');
create policy "members read by members" on public.org_members for select using (public.is_org_member(org_id));
create policy "members write by owner" on public.org_members for insert with check (public.org_role(org_id) = 'owner');
create policy "clients read by members" on public.clients for select using (public.is_org_member(org_id));
create policy "clients write by trainer" on public.clients for insert
  with check (public.org_role(org_id) in ('owner', 'staff'));
create policy "clients update by trainer" on public.clients for update
  using (public.org_role(org_id) in ('owner', 'staff')) with check (public.org_role(org_id) in ('owner', 'staff'));
create policy "client reads own profile" on public.clients for select using (auth_user_id = auth.uid());
create policy "clients public read by onboarding token" on public.clients for select using (onboarding_token is not null);
-- a signed-in client may update every column of their own client row; the onboarding page (signed
-- out) may update any client row that has an onboarding token
create policy "client updates own profile" on public.clients for update
  using (auth_user_id = auth.uid()) with check (auth_user_id = auth.uid());
create policy "clients public update by onboarding token" on public.clients for update
  using (onboarding_token is not null) with check (onboarding_token is not null);
create policy "offers read by anyone" on public.offers for select using (true);
create policy "offers managed by org owner" on public.offers for all using (public.org_role(org_id) in ('owner', 'staff'));
create policy "purchases read by org members" on public.client_purchases for select
  using (public.is_org_member(org_id) or public.is_platform_admin());
create policy "purchases insert by org members" on public.client_purchases for insert
  with check (public.is_org_member(org_id));
create policy "purchases update by org members" on public.client_purchases for update
  using (public.is_org_member(org_id));
create policy "purchases read by client" on public.client_purchases for select
  using (client_id in (select id from public.clients where auth_user_id = auth.uid()));
create policy "session usage read by org members" on public.session_usage for select
  using (public.is_org_member(org_id) or public.is_platform_admin());
create policy "session usage insert by org members" on public.session_usage for insert
  with check (public.is_org_member(org_id));
create policy "bookings read by org members" on public.bookings for select
  using (public.is_org_member(org_id) or public.is_platform_admin());
create policy "bookings managed by org members" on public.bookings for all using (public.is_org_member(org_id));
create policy "bookings read by client" on public.bookings for select
  using (client_id in (select id from public.clients where auth_user_id = auth.uid()));
create policy "bookings update by client" on public.bookings for update
  using (client_id in (select id from public.clients where auth_user_id = auth.uid()));
-- the client booking page: any booking whose client is the signed-in client (the org is not checked)
create policy "bookings insert by client" on public.bookings for insert
  with check (client_id in (select id from public.clients where auth_user_id = auth.uid()));
create policy "booking settings read by anyone" on public.booking_settings for select using (true);
create policy "booking settings managed by org members" on public.booking_settings for all
  using (public.is_org_member(org_id));
create policy "sms_settings read by org members" on public.sms_settings for select using (public.is_org_member(org_id));
create policy "sms_settings managed by org members" on public.sms_settings for all using (public.is_org_member(org_id));
create policy "sms_schedules read by org members" on public.sms_schedules for select using (public.is_org_member(org_id));
create policy "sms_schedules managed by org members" on public.sms_schedules for all using (public.is_org_member(org_id));
create policy "sms_messages read by org members" on public.sms_messages for select using (public.is_org_member(org_id));
create policy "sms_messages managed by org members" on public.sms_messages for all using (public.is_org_member(org_id));
create policy "sms_suppression read by org members" on public.sms_suppression for select
  using (public.is_org_member(org_id));
create policy "sms_suppression managed by org members" on public.sms_suppression for all
  using (public.is_org_member(org_id));
