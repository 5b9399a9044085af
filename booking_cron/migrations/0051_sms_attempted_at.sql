-- When a text's last send attempt began (the provider's clock: real time), for reconciling texts
-- of unknown fate (issue 20). A send that timed out or lost its connection leaves the text
-- `unknown`; later ticks look it up at the provider, and conclude "it never went" (and send it, if
-- still fresh) only once this attempt is older than the look-up grace (booking_cron/sms/sender.py).
alter table public.sms_messages add column if not exists attempted_at timestamptz;
