-- The row triggers of 0010 and 0014 call their function only when there is something to do: a
-- booking that becomes cancelled without a time, a pack whose sessions_used changed. Same
-- behaviour; a tick's one UPDATE of 100,000 bookings no longer runs plpgsql for each row.

drop trigger if exists booking_cron_stamp_cancelled_at on public.bookings;
create trigger booking_cron_stamp_cancelled_at
  before insert or update of status on public.bookings
  for each row when (new.status = 'cancelled' and new.cancelled_at is null)
  execute function public.booking_cron_stamp_cancelled_at();

drop trigger if exists booking_cron_ledger_on_update on public.client_purchases;
create trigger booking_cron_ledger_on_update
  after update of sessions_used on public.client_purchases
  for each row when (new.sessions_used is distinct from old.sessions_used)
  execute function public.booking_cron_record_pack_change();
