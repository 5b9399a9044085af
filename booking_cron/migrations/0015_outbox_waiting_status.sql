-- booking-cron's texts that wait for their time carry status 'scheduled', which the app's
-- sms-worker never takes (it sends 'queued' rows, and its queue_pending_sms() turns due
-- 'pending' rows into 'queued'). Rows booking-cron queued before this change move over.

alter table public.sms_messages drop constraint if exists sms_messages_status_check;
alter table public.sms_messages add constraint sms_messages_status_check check (status in (
  'pending', 'queued', 'scheduled', 'sending', 'sent', 'delivered', 'failed', 'cancelled',
  'skipped', 'expired', 'unknown'));

update public.sms_messages set status = 'scheduled' where status = 'queued' and kind is not null;

drop index if exists public.sms_messages_due_idx;
create index if not exists sms_messages_scheduled_idx
  on public.sms_messages (scheduled_for) where status in ('scheduled', 'sending');
