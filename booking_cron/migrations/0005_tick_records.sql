-- What each tick did, kept in the bookings database beside the rows it changed.
-- tick_runs: one row per flow run. tick_results: one row per booking and step.
-- tick_completions: bookings a tick completed, until their deduction has an outcome;
-- the next tick finishes what an interrupted one left (and never touches the app's own).

create table if not exists public.tick_runs (
  flow_run_id uuid primary key,
  tick_at timestamptz not null,
  trigger text not null default 'run',
  state text not null default 'running' check (state in ('running', 'finished', 'failed')),
  started_at timestamptz not null default now(),
  finished_at timestamptz,
  summary jsonb
);
create index if not exists tick_runs_tick_at_idx on public.tick_runs (tick_at);

create table if not exists public.tick_results (
  flow_run_id uuid not null,
  booking_id uuid not null,
  step text not null,
  outcome text not null,
  reason text,
  detail jsonb,
  recorded_at timestamptz not null default now(),
  primary key (flow_run_id, booking_id, step)
);
create index if not exists tick_results_booking_id_idx on public.tick_results (booking_id);

create table if not exists public.tick_completions (
  booking_id uuid primary key references public.bookings(id) on delete cascade,
  purchase_id uuid,
  flow_run_id uuid not null,
  completed_at timestamptz not null default now(),
  deduction text
);
create index if not exists tick_completions_pending_idx
  on public.tick_completions (completed_at) where deduction is null;
