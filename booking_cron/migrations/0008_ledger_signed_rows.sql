-- The ledger records every change to a pack, not only sessions taken by bookings:
-- `sessions` is the signed number of sessions a row moves (1 for a deduction, -1 for a give-back
-- without a booking, any n for an adjustment), and a booking's deduction given back keeps its
-- row with `released_at` set (so it stays one row per booking, and can be taken again).
-- A pack's sessions_used = sum(sessions) over its rows not released.

alter table public.session_usage add column if not exists sessions int not null default 1;
alter table public.session_usage add column if not exists released_at timestamptz;
