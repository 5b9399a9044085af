-- Twilio's status callbacks name a text by its provider sid: find it by index, not by scanning
-- the whole outbox, so that every callback is answered quickly however long the outbox grows.

create index if not exists sms_messages_provider_message_id_idx
  on public.sms_messages (provider_message_id) where provider_message_id is not null;
