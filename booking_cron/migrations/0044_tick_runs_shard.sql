-- Which orgs a tick covered: shard `shard_index` (0-based) of `shard_count`; 0 of 1 is every org.
-- A backfill resuming shard 2/4 skips only slots that a tick of every org or of that same shard
-- finished, and the audit counts a later tick only if it covered the booking's org.

alter table public.tick_runs add column if not exists shard_index integer not null default 0;
alter table public.tick_runs add column if not exists shard_count integer not null default 1;
alter table public.tick_runs drop constraint if exists tick_runs_shard_check;
alter table public.tick_runs add constraint tick_runs_shard_check
  check (shard_count >= 1 and shard_index >= 0 and shard_index < shard_count);
