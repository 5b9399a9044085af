-- The app lets a client update their own bookings through the API (its client app cancels by
-- writing `status = 'cancelled'`), and its policy does not say which statuses. Beside the tick that
-- is a hole: a client who cancels a session already completed gets it back at the next tick
-- (a cancelled booking's session is given back), and one who marks a booking completed takes it
-- out of the tick's hands before it was deducted. So a caller who is not a member of the booking's
-- org (a client, as the app's `authenticated` user) may cancel an upcoming booking (pending or
-- confirmed), and change no status otherwise. Trainers (members), service_role, the owner and the
-- tick are not affected (public.booking_cron_may_act).

create or replace function public.booking_cron_guard_client_status()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, public
as $$
begin
  if not (new.status = 'cancelled' and old.status in ('pending', 'confirmed'))
     and not public.booking_cron_may_act(old.org_id) then
    raise exception 'permission denied: only the org''s trainers can change a booking from % to %', old.status, new.status
      using errcode = 'insufficient_privilege';
  end if;
  return new;
end;
$$;

revoke execute on function public.booking_cron_guard_client_status() from public;

drop trigger if exists booking_cron_guard_client_status on public.bookings;
create trigger booking_cron_guard_client_status
  before update of status on public.bookings
  -- only API callers' status changes reach the function: the tick's 100k completions never do
  for each row when (new.status is distinct from old.status
                     and current_setting('role', true) in ('anon', 'authenticated')
                     and not (new.status = 'cancelled' and old.status in ('pending', 'confirmed')))
  execute function public.booking_cron_guard_client_status();
