-- The app's own functions that booking-cron lives beside, with the app's behaviour (and its flaws:
-- use_session reads then writes; neither checks who calls): the pack counters behind "Use 1
-- Session", the calendar's auto-complete and cron-sms-reminders (use_session), "Reinstate"
-- (release_session, -1 when nothing to give back), and the outbox path of its edge functions
-- (insert_sms_direct writes 'pending' rows; sms-worker's queue_pending_sms makes due ones 'queued').
create function public.use_session(p_purchase_id uuid) returns boolean language plpgsql security definer as $$
declare
  v_remaining int;
  v_expires timestamptz;
begin
  select sessions_remaining, expires_at into v_remaining, v_expires
  from public.client_purchases where id = p_purchase_id;
  if v_remaining is null or v_remaining <= 0 then return false; end if;
  if v_expires is not null and v_expires < now() then return false; end if;
  update public.client_purchases set sessions_used = sessions_used + 1 where id = p_purchase_id;
  return true;
end;
$$;

create function public.release_session(p_purchase_id uuid) returns int language plpgsql security definer as $$
declare
  v_used int;
begin
  update public.client_purchases set sessions_used = sessions_used - 1
  where id = p_purchase_id and sessions_used > 0
  returning sessions_used into v_used;
  if not found then return -1; end if;
  return v_used;
end;
$$;

create function public.queue_pending_sms() returns int language plpgsql security definer as $$
declare
  v_updated int;
begin
  with updated as (
    update public.sms_messages set status = 'queued', updated_at = now()
    where status = 'pending' and scheduled_for <= now()
    returning id
  )
  select count(*) into v_updated from updated;
  return v_updated;
end;
$$;

create function public.insert_sms_direct(p_org_id uuid, p_client_id uuid, p_body text, p_scheduled_for timestamptz,
                                         p_related_entity_type text, p_related_entity_id uuid, p_idempotency_key text)
returns uuid language plpgsql security definer as $$
declare
  v_id uuid;
  v_phone text;
  v_from text;
begin
  select phone into v_phone from public.clients where id = p_client_id;
  if v_phone is null then return null; end if;
  select coalesce(twilio_messaging_service_sid, twilio_phone_number) into v_from
  from public.sms_settings where org_id = p_org_id and enabled;
  if v_from is null then return null; end if;
  insert into public.sms_messages (org_id, client_id, to_phone, from_phone, body, related_entity_type,
                                   related_entity_id, scheduled_for, idempotency_key, status)
  values (p_org_id, p_client_id, v_phone, v_from, p_body, p_related_entity_type, p_related_entity_id,
          p_scheduled_for, p_idempotency_key, 'pending')
  on conflict (idempotency_key) do nothing
  returning id into v_id;
  return v_id;
end;
$$;
