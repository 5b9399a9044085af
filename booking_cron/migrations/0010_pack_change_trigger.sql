-- Every change to sessions_used lands in the ledger in the same transaction, whoever makes it:
-- booking-cron's functions write their own ledger rows and mark themselves with the setting
-- booking_cron.ledger_write (a function-level SET, restored when they return); any other write
-- (the app's "Edit package" form, a pack inserted with usage already on it, a manual UPDATE)
-- gets a signed row recording the difference ('adjustment', or 'opening' for a new pack).

create or replace function public.booking_cron_record_pack_change()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, public
as $$
declare
  v_delta int;
begin
  if current_setting('booking_cron.ledger_write', true) = 'on' then
    return null;
  end if;
  v_delta := coalesce(new.sessions_used, 0)
           - case when tg_op = 'UPDATE' then coalesce(old.sessions_used, 0) else 0 end;
  if v_delta <> 0 then
    insert into public.session_usage (org_id, client_id, purchase_id, session_date, sessions, source)
    values (new.org_id, new.client_id, new.id, current_date, v_delta,
            case when tg_op = 'INSERT' then 'opening' else 'adjustment' end);
  end if;
  return null;
end;
$$;

revoke execute on function public.booking_cron_record_pack_change() from public;

drop trigger if exists booking_cron_ledger_on_insert on public.client_purchases;
create trigger booking_cron_ledger_on_insert
  after insert on public.client_purchases
  for each row execute function public.booking_cron_record_pack_change();

drop trigger if exists booking_cron_ledger_on_update on public.client_purchases;
create trigger booking_cron_ledger_on_update
  after update of sessions_used on public.client_purchases
  for each row execute function public.booking_cron_record_pack_change();
