-- The tick rewrites suppressed numbers stored by hand in E.164 before planning (the app may
-- write `0412 399 002`); it needs to change a row's phone, and to drop the row when the same
-- number is suppressed in E.164 already. It still never writes packs or the ledger.

grant update (phone), delete on public.sms_suppression to booking_cron_tick;
