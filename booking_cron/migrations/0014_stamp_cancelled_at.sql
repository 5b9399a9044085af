-- When a booking becomes cancelled, whoever cancels it (the app's pages, its portal, a script),
-- cancelled_at says when, if the writer did not: the tick gives back a cancelled booking's
-- session and the audit judges texts and give-backs against that time.

create or replace function public.booking_cron_stamp_cancelled_at()
returns trigger
language plpgsql
set search_path = pg_catalog, public
as $$
begin
  if new.status = 'cancelled' and new.cancelled_at is null then
    new.cancelled_at := now();
  end if;
  return new;
end;
$$;

revoke execute on function public.booking_cron_stamp_cancelled_at() from public;

drop trigger if exists booking_cron_stamp_cancelled_at on public.bookings;
create trigger booking_cron_stamp_cancelled_at
  before insert or update of status on public.bookings
  for each row execute function public.booking_cron_stamp_cancelled_at();
