-- One send rate across every process that sends (issue 18): the provider's limits are per sender
-- (a Twilio number or messaging service: BOOKING_CRON_SMS_RATE a second) and per account
-- (BOOKING_CRON_SMS_ACCOUNT_RATE a second). Four shard ticks on four workers each pacing on their
-- own would send four times that. Instead every send first takes a slot here: the next free time
-- of its sender and of its account, on the database's clock, which all workers share.
--
-- send_slots holds, per key ('sender:<number or MG sid>', 'account:<name>'), the earliest time the
-- next send may go. take_send_slot locks the account row, then the sender row (always that order:
-- no deadlock), takes the later of now and both next times, moves both on by one interval, and
-- answers how many seconds the caller must wait before sending. Each call is its own short
-- transaction (the caller runs it in autocommit), so a slot's row lock is held for microseconds,
-- never across the provider's answer. A rate of 0 or less means no limit for that key.

create table if not exists booking_cron.send_slots (
  key text primary key,
  next_at timestamptz not null
);

create or replace function booking_cron.take_send_slot(p_sender text, p_sender_rate double precision,
                                                       p_account text, p_account_rate double precision)
returns double precision
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_keys text[] := array['account:' || coalesce(p_account, ''), 'sender:' || coalesce(p_sender, '')];
  v_rates double precision[] := array[p_account_rate, p_sender_rate];
  v_next timestamptz;
  v_slot timestamptz;
  v_now timestamptz;
begin
  insert into booking_cron.send_slots (key, next_at)
  select k, '-infinity' from unnest(v_keys) k
  on conflict (key) do nothing;
  -- account first, then sender: every caller locks in this order
  perform 1 from booking_cron.send_slots where key = v_keys[1] for update;
  perform 1 from booking_cron.send_slots where key = v_keys[2] for update;
  v_now := clock_timestamp();  -- after the locks: a caller that waited takes a slot from now, not from before
  v_slot := v_now;
  for i in 1..2 loop
    if v_rates[i] > 0 then
      select next_at into v_next from booking_cron.send_slots where key = v_keys[i];
      v_slot := greatest(v_slot, v_next);
    end if;
  end loop;
  for i in 1..2 loop
    if v_rates[i] > 0 then
      update booking_cron.send_slots
      set next_at = v_slot + make_interval(secs => 1.0 / v_rates[i])
      where key = v_keys[i];
    end if;
  end loop;
  return greatest(extract(epoch from v_slot - v_now)::double precision, 0.0);
end;
$$;

revoke all on booking_cron.send_slots from public;
revoke execute on function booking_cron.take_send_slot(text, double precision, text, double precision) from public;
grant execute on function booking_cron.take_send_slot(text, double precision, text, double precision)
  to booking_cron_tick;
