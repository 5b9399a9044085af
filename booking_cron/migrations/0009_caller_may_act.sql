-- The app's membership rule for booking-cron's functions. On Supabase the API switches to role
-- `anon` or `authenticated` (SET ROLE) and identifies the user by auth.uid(); an `authenticated`
-- caller may act only on orgs it is a member of (public.org_members, as the app's is_org_member()).
-- `anon` may act on nothing. Anyone else who can execute the function (the owner, service_role,
-- booking_cron_tick) acts for every org. The role GUC is the caller's, also inside security definer.

create or replace function public.booking_cron_may_act(p_org_id uuid)
returns boolean
language plpgsql
stable
security definer
set search_path = pg_catalog, public
as $$
declare
  v_role text := current_setting('role', true);
  v_member boolean;
begin
  if v_role = 'anon' then
    return false;
  end if;
  if v_role is distinct from 'authenticated' then
    return true;
  end if;
  if to_regclass('public.org_members') is null or to_regprocedure('auth.uid()') is null then
    return false;
  end if;
  execute 'select exists (select 1 from public.org_members m where m.org_id = $1 and m.user_id = auth.uid())'
    into v_member using p_org_id;
  return coalesce(v_member, false);
end;
$$;

-- Raises insufficient_privilege (SQLSTATE 42501, HTTP 403 through the API) unless the caller may act.
create or replace function public.booking_cron_require_member(p_org_id uuid, p_what text)
returns void
language plpgsql
stable
security definer
set search_path = pg_catalog, public
as $$
begin
  if not public.booking_cron_may_act(p_org_id) then
    raise exception 'permission denied: % belongs to an org you are not a member of', p_what
      using errcode = 'insufficient_privilege';
  end if;
end;
$$;

revoke execute on function public.booking_cron_may_act(uuid) from public;
revoke execute on function public.booking_cron_require_member(uuid, text) from public;
