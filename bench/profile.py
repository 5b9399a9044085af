"""Where a big tick's time goes, in figures that do not depend on how busy the machine is: the
rows each table gained or changed and the WAL each design wrote, for the tick and for the raw
set-based statement over the same data, beside their times.

    python -m bench.profile --n 100000 --n 1000000
    python -m bench.profile --n 1000000 --explain   # the plans of one complete and one deduct batch

Each design runs on its own freshly loaded database of the same server. WAL is read from the
server's insert position before and after, so run it on a server nothing else writes to at the
time (by default the embedded PostgreSQL; BENCH_SERVER_URL names another).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import psycopg

from bench import baselines
from bench.data import load_due
from bench.env import T, analyze, one, prefect_server, scratch_database
from bench.runner import tick_in_subprocess
from booking_cron.storage import database

TABLES = """
select relname, n_tup_ins, n_tup_upd, n_tup_hot_upd
from pg_catalog.pg_stat_user_tables where schemaname in ('public', 'booking_cron')
"""


def snapshot(url: str) -> tuple[int, int, dict[str, tuple[int, int, int]]]:
    """The server's WAL insert position, the full-page images in its WAL so far, and each table's
    cumulative inserts/updates/HOT updates."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("select pg_catalog.pg_stat_clear_snapshot()")
        lsn = one(conn.execute("select pg_catalog.pg_current_wal_insert_lsn() - '0/0'::pg_lsn").fetchone())[0]
        fpi = one(conn.execute("select wal_fpi from pg_catalog.pg_stat_wal").fetchone())[0]
        tables = {r[0]: tuple(r[1:]) for r in conn.execute(TABLES)}
    return int(lsn), int(fpi), tables


def writes(before, after) -> dict:
    """WAL bytes, full-page images (a page's first change after a checkpoint is written whole) and,
    per table that changed, rows inserted / updated (of which HOT)."""
    (lsn0, fpi0, t0), (lsn1, fpi1, t1) = before, after
    rows = {}
    for name, (ins, upd, hot) in sorted(t1.items()):
        i0, u0, h0 = t0.get(name, (0, 0, 0))
        if (ins - i0) or (upd - u0):
            rows[name] = {"inserted": ins - i0, "updated": upd - u0, "hot": hot - h0}
    return {"wal_bytes": lsn1 - lsn0, "full_page_images": fpi1 - fpi0, "rows": rows}


def settle(url: str) -> None:
    """Statistics reach pg_stat_user_tables after the writing backend reports them (at most about a
    second later): wait until two reads agree."""
    last = None
    for _ in range(20):
        now = snapshot(url)[2]
        if now == last:
            return
        last = now
        time.sleep(0.7)


def profile(server: str, n: int) -> dict:
    out: dict = {"n": n}
    with scratch_database(server, f"profile_raw_{n}") as url:
        load_due(url, n)
        analyze(url)
        settle(url)
        before = snapshot(url)
        raw = baselines.raw_set_based(url)
        settle(url)
        out["raw"] = {"seconds": raw["seconds"], **writes(before, snapshot(url))}
    with scratch_database(server, f"profile_tick_{n}") as url:
        load_due(url, n)
        analyze(url)
        settle(url)
        before = snapshot(url)
        tick = tick_in_subprocess(url, T)
        settle(url)
        steps = tick["steps"]
        out["tick"] = {"seconds": steps.get("complete+deduct"), "complete": steps.get("complete_span"),
                       "deduct": steps.get("deduct_span"), "tick_wall": tick.get("wall"),
                       **writes(before, snapshot(url))}
    out["wal_ratio"] = out["tick"]["wal_bytes"] / out["raw"]["wal_bytes"]
    out["time_ratio"] = out["tick"]["seconds"] / out["raw"]["seconds"]
    return out


def explain(server: str, n: int) -> None:
    """EXPLAIN (ANALYZE, BUFFERS, WAL) of the tick's statements for one batch in the middle of n due
    bookings: the complete batch, then (after every batch is completed) one deduct batch; printed."""
    import uuid

    from booking_cron.domain.due import ALL
    from booking_cron.storage.store import COMPLETE_RANGE, DEDUCT_RANGE, BookingStore, RunRecords, key_range

    with scratch_database(server, f"explain_{n}") as url:
        load_due(url, n)
        analyze(url)
        run = str(uuid.uuid4())
        RunRecords(url).start_run(run, T, "bench")
        store = BookingStore(url)
        shard = {"shard": ALL.index, "shards": ALL.count}
        ranges = store.plan_complete_ranges(T)
        middle = ranges[len(ranges) // 2]
        with psycopg.connect(url) as conn:
            plan = conn.execute("explain (analyze, buffers, wal) " + COMPLETE_RANGE.replace(
                "{range}", key_range("b.id", *middle)), {"run": run, "tick_at": T, "lo": middle[0],
                                                         "hi": middle[1], **shard}).fetchall()
            conn.commit()
        print(f"-- complete, one batch of {len(ranges)} over {n} due\n" + "\n".join(r[0] for r in plan), flush=True)
        for key in ranges:
            if key != middle:
                store.complete_range(run, T, ALL, key)
        analyze(url)
        packs = store.plan_deduct_ranges(ALL)
        middle = packs[len(packs) // 2]
        with psycopg.connect(url) as conn:
            plan = conn.execute("explain (analyze, buffers, wal) " + DEDUCT_RANGE.replace(
                "{range}", key_range("tc.purchase_id", *middle)), {"run": run, "lo": middle[0],
                                                                  "hi": middle[1], **shard}).fetchall()
            conn.rollback()
        print(f"-- deduct, one batch of {len(packs)}\n" + "\n".join(r[0] for r in plan), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, action="append", help="due bookings (repeatable); default 100000")
    parser.add_argument("--server", default=None, help="PostgreSQL server URL (default: the embedded one)")
    parser.add_argument("--explain", action="store_true", help="print the plans of one complete and one deduct batch")
    args = parser.parse_args()
    server = args.server or os.environ.get("BENCH_SERVER_URL") or database.embedded_url()
    if args.explain:
        for n in args.n or [100_000]:
            explain(server, n)
        return
    with prefect_server():
        for n in args.n or [100_000]:
            result = profile(server, n)
            print(json.dumps(result, indent=1), flush=True)
            raw, tick = result["raw"], result["tick"]
            print(f"n={n}: complete+deduct {tick['seconds']:.1f} s vs raw {raw['seconds']:.1f} s "
                  f"({result['time_ratio']:.2f}x); WAL {tick['wal_bytes'] / n:.0f} vs {raw['wal_bytes'] / n:.0f} "
                  f"bytes a booking ({result['wal_ratio']:.2f}x); full-page images {tick['full_page_images']} vs "
                  f"{raw['full_page_images']}", flush=True)


if __name__ == "__main__":
    main()
