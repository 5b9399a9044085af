-- The tick gives back the sessions of cancelled bookings: it reads the ledger to find them and
-- gives them back through release_sessions(), never by writing packs itself.

grant select on public.session_usage to booking_cron_tick;
grant execute on function public.release_sessions(uuid[], uuid[]) to booking_cron_tick;
