-- The tick walks its work in key ranges that PostgreSQL plans and reads itself (flows/tick.py):
-- * confirmed bookings by id, each range a short index scan (the end_time index would be read
--   whole for every range); completing a booking takes it out of this partial index, so the
--   tick's own updates add no index entries;
-- * bookings a tick completed and has not yet deducted, by pack, so a range never splits a pack.

create index if not exists bookings_confirmed_id_end_time_idx
  on public.bookings (id, end_time) where status = 'confirmed';

create index if not exists tick_completions_owed_purchase_idx
  on public.tick_completions (purchase_id) where deduction is null;
