-- complete_booking() checks the caller's membership before it changes anything: an
-- `authenticated` user completes only bookings of its own orgs (the app's "mark as completed").

create or replace function public.complete_booking(p_booking_id uuid)
returns text
language plpgsql
security definer
set search_path = pg_catalog, public
as $$
declare
  v_org uuid;
  v_purchase_id uuid;
begin
  select b.org_id into v_org from public.bookings b where b.id = p_booking_id;
  if not found then
    return 'not_confirmed';
  end if;
  perform public.booking_cron_require_member(v_org, 'this booking');
  update public.bookings b
  set status = 'completed', updated_at = now()
  where b.id = p_booking_id and b.status = 'confirmed'
  returning b.purchase_id into v_purchase_id;
  if not found then
    return 'not_confirmed';
  end if;
  if v_purchase_id is null then
    return 'no_pack';
  end if;
  return (select u.outcome from public.use_sessions(array[v_purchase_id], array[p_booking_id]) u);
end;
$$;
