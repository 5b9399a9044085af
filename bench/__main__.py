"""`python -m bench` (`make bench`): every figure beside its baseline, measured in this run.

    python -m bench                                  # everything at the issue's sizes
    python -m bench --sizes 1000,10000 --only 1,3    # a quick run
    python -m bench --seed-app-limit 10000           # baseline (b) over 10k, scaled to the largest size

Comparisons: 1 complete+deduct at scale vs raw SQL and the seed app's loop (and statement
counts); 2 scaling curve (time, peak RSS); 3 fixed cost vs a one-task flow; 4 texts through
the sandbox; 5 four shard ticks at once vs one tick; 6 a 30-day backfill vs one tick at its last
slot, on real Prefect servers (SQLite, then PostgreSQL); 7 a nothing-due `booking-cron run` vs a
one-task flow, each a whole process against booking-cron's local Prefect server; 8 what one send
slot costs (PostgreSQL vs Prefect's rate_limit vs the old per-process pacer); 9 (opt-in, --only 9)
one tick over a million due bookings vs a 1,000-booking tick. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")  # the tick's "no SMS provider" warning is expected here
os.environ["BOOKING_CRON_COUNT_STATEMENTS"] = "1"  # before any pool exists
for _name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_API_URL"):
    os.environ.pop(_name, None)  # never a real provider: only comparison 4 sets these, to the sandbox

from bench import backfill, deduct, env, fixed, local, report, send_rate, shards, texts  # noqa: E402


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000",
                        help="due bookings per tick for comparison 2; the largest is used by 1 and 5")
    parser.add_argument("--only", default="1,2,3,4,5,6,7,8", help="comparisons to run, e.g. 1,3")
    parser.add_argument("--month-bookings", type=int, default=9000,
                        help="bookings in comparison 6, in the last 30 days of its range (seed() spreads them "
                             "over four weeks)")
    parser.add_argument("--backfill-days", type=int, default=30,
                        help="comparison 6's range in days, ending where the month's data ends (365: a year, "
                             "52,560 slots, the same data; the PostgreSQL-server re-run is skipped beyond 31 days)")
    parser.add_argument("--texts", type=int, default=2000, help="due texts for comparison 4")
    parser.add_argument("--fixed-runs", type=int, default=7, help="runs of each flow for comparison 3 (median)")
    parser.add_argument("--seed-app-limit", type=int, default=None,
                        help="run baseline (b) over this many bookings and scale to the largest size")
    parser.add_argument("--raw-repeats", type=int, default=3,
                        help="fresh databases to run baseline (a) on (median); it is fast and noisy")
    parser.add_argument("--million", type=int, default=1_000_000,
                        help="due bookings of comparison 9's big tick (opt-in: --only 9; it takes minutes to load)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--json", dest="json_path", help="also write every measurement to this file")
    args = parser.parse_args(argv)
    args.sizes = sorted({int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()})
    args.only = {int(s) for s in args.only.split(",") if s.strip()}
    if not args.sizes or not args.only <= {1, 2, 3, 4, 5, 6, 7, 8, 9}:
        parser.error("--sizes needs at least one size; --only takes numbers 1 to 9")
    return args


def progress(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    server, largest = env.server_url(), args.sizes[-1]
    machine = env.machine(server)
    progress(f"machine: {machine}")
    load_before = os.getloadavg()
    if load_before[0] > 0.5 * (os.cpu_count() or 1):
        progress(f"WARNING: load average {load_before[0]:.1f} before the bench: other work is running, "
                 "figures will be slower and noisier")
    measured: dict = {"machine": machine, "sizes": args.sizes, "only": sorted(args.only)}
    figures: list[report.Figure] = []
    started = time.perf_counter()
    with env.prefect_server() if args.only & {1, 2, 3, 4, 5, 8, 9} else contextlib.nullcontext():
        ticks: dict[int, dict] = {}
        if args.only & {1, 2}:
            for n in (args.sizes if 2 in args.only else [largest]):
                ticks[n] = deduct.tick_at_size(server, n)
                progress(f"tick over {n:,} due: {ticks[n]['seconds']:.2f} s, "
                         f"peak RSS {ticks[n]['rss_peak'] / 2**20:.0f} MiB, {ticks[n]['statements']} statements")
            measured["ticks"] = ticks
        if 1 in args.only:
            raw = deduct.raw_baseline(server, largest, args.raw_repeats)
            progress(f"(a) raw SQL over {largest:,}: {raw['seconds']:.2f} s (median of {raw['runs']})")
            seed_app = deduct.seed_app_baseline(server, largest, args.seed_app_limit)
            progress(f"(b) seed app's loop over {seed_app['measured_over']:,}: {seed_app['seconds']:.2f} s "
                     f"({seed_app['statements']:,} statements)")
            process = deduct.process_at_size(server, largest)
            progress(f"whole `booking-cron run` over {largest:,}: {process['seconds']:.2f} s")
            measured.update(raw=raw, seed_app=seed_app, process=process)
            figures += report.comparison_1(ticks[largest], raw, seed_app, process)
        if 2 in args.only:
            figures += report.comparison_2(ticks)
        if 9 in args.only:
            small = ticks.get(1000) or deduct.tick_at_size(server, 1000)
            big = deduct.tick_at_size(server, args.million)
            progress(f"tick over {args.million:,} due: {big['seconds']:.2f} s, peak RSS {big['rss_peak'] / 2**20:.0f} MiB "
                     f"(1,000 due: {small['rss_peak'] / 2**20:.0f} MiB)")
            measured["million"] = {"big": big, "small": small}
            figures += report.comparison_9(big, small)
        if 3 in args.only:
            measured["fixed"] = fixed.run(server, args.fixed_runs)
            progress(f"fixed cost: tick {measured['fixed']['tick_median']:.3f} s, "
                     f"one-task flow {measured['fixed']['flow_median']:.3f} s")
            figures += report.comparison_3(measured["fixed"])
        if 4 in args.only:
            measured["texts"] = texts.run(server, args.texts)
            progress(f"texts: {measured['texts']['tick_seconds']:.2f} s for {args.texts:,}")
            figures += report.comparison_4(measured["texts"])
        if 5 in args.only:
            measured["shards"] = shards.run(server, largest)
            progress(f"shards: one tick {measured['shards']['single_seconds']:.2f} s, "
                     f"four at once {measured['shards']['shards_window']:.2f} s")
            figures += report.comparison_5(measured["shards"])
        if 8 in args.only:
            measured["send_rate"] = send_rate.run(server)
            progress(f"send slots: PostgreSQL {measured['send_rate']['postgres_seconds'] * 1000:.2f} ms, "
                     f"Prefect rate_limit {measured['send_rate']['prefect_seconds'] * 1000:.2f} ms a slot")
            figures += report.comparison_8(measured["send_rate"])
    if 6 in args.only:  # its own Prefect servers (`prefect server start`), as an operator runs them
        measured["backfill"] = backfill.run(server, args.month_bookings, days=args.backfill_days,
                                            on_postgres=args.backfill_days <= 31)
        progress(f"backfill: {measured['backfill']['backfill_seconds']:.2f} s for {measured['backfill']['slots']:,} "
                 f"slots, one tick {measured['backfill']['tick_seconds']:.2f} s")
        figures += report.comparison_6(measured["backfill"])
    if 7 in args.only:  # booking-cron's local Prefect server, in a scratch data folder, as a command starts it
        measured["local"] = local.run(server, args.fixed_runs)
        progress(f"local Prefect: run {measured['local']['tick_median']:.2f} s, one-task flow "
                 f"{measured['local']['flow_median']:.2f} s (server start {measured['local']['server_start']:.1f} s)")
        figures += report.comparison_7(measured["local"])

    print()
    print(f"## Figures (one run, {time.perf_counter() - started:.0f} s, same machine)\n")
    print(report.figures_table(figures))
    load_after = os.getloadavg()
    measured["load_average"] = {"before": load_before, "after": load_after}
    print("\nmachine: " + ", ".join(f"{k} {v}" for k, v in machine.items())
          + f"; load average (1, 5, 15 min) before {fmt_load(load_before)}, after {fmt_load(load_after)}")
    print(details(measured))
    if args.json_path:
        with open(args.json_path, "w") as out:
            json.dump(measured, out, indent=2, default=str)
    return 1 if args.strict and any(f.met is False for f in figures) else 0


def fmt_load(load: tuple[float, float, float]) -> str:
    return "/".join(f"{x:.1f}" for x in load)


def details(m: dict) -> str:
    out = []
    if m.get("ticks"):
        out += ["\n### Ticks by size (fresh subprocess each)\n", report.scaling_table(m["ticks"])]
    if "million" in m:
        out += ["\n### Comparison 9's ticks\n", report.scaling_table({t["n"]: t for t in m["million"].values()})]
    if "process" in m:
        out += [f"\nwhole `booking-cron run` process: {m['process']['seconds']:.2f} s, summary {m['process']['output']}"]
    if "raw" in m:
        seed_app = m["seed_app"]
        runs = [round(x, 2) for x in m["raw"]["all_seconds"]]
        out += [f"\n(a) raw SQL: {m['raw']['seconds']:.2f} s (median of {runs}), 1 statement, "
                f"end state {m['raw']['end_state']}",
                f"(b) seed app's loop: {seed_app['seconds']:.2f} s, {seed_app['statements']:,} statements"
                + (f" (measured over {seed_app['measured_over']:,}, scaled)" if seed_app.get("extrapolated") else "")
                + f", end state {seed_app['end_state']}"]
    if "fixed" in m:
        f = m["fixed"]
        out += [f"\nfixed cost: ticks {[round(x, 3) for x in f['ticks']]}, one-task flows "
                f"{[round(x, 3) for x in f['flows']]}, {f['statements_per_tick']:.0f} statements per nothing-due tick"]
    if "texts" in m:
        t = m["texts"]
        out += [f"\ntexts: tick {t['tick_seconds']:.2f} s (queue step {t['queue_seconds']:.2f} s, send steps "
                f"{t['send_seconds']:.2f} s); sandbox accepted the first {t['first_accept']:.2f} s and the last "
                f"{t['last_accept']:.2f} s after the tick started; {t['rate_limited']} answered 429; outbox "
                f"{t['outbox']}; {t['statements']:,} statements"]
    if "shards" in m:
        s = m["shards"]
        out += [f"\nshards: one tick {s['single_seconds']:.2f} s (process {s['single_process_wall']:.2f} s, CPU busy "
                f"{s['cpu_busy_single']:.0%}); four shards {s['shards_window']:.2f} s (processes "
                f"{s['shards_process_wall']:.2f} s, CPU busy {s['cpu_busy_shards']:.0%}); speed-up {s['speedup']:.2f}x "
                f"({s['speedup_with_startup']:.2f}x with interpreter start-up)",
                report.markdown(["shard", "completed", "tick", "complete+deduct", "tick CPU"],
                                [[p["shard"], f"{p['completed']:,}", f"{p['seconds']:.2f} s",
                                  f"{p['complete+deduct']:.2f} s", f"{p['cpu_seconds']:.1f} s"]
                                 for p in s["per_shard"]])]
    if "backfill" in m:
        b = m["backfill"]
        out += [f"\nbackfill: data {b['data']}; backfill {b['backfill_seconds']:.2f} s ({b['backfill']['ticked']:,} "
                f"slots ticked, {b['backfill']['completed']:,} completed, {b['backfill']['deducted']:,} deducted, "
                f"not deducted {b['backfill']['not_deducted']}); tick {b['tick_seconds']:.2f} s "
                f"({b['tick']['completed']:,} completed, {b['tick']['deducted']:,} deducted); on a PostgreSQL-backed "
                f"Prefect server {b['postgres_backfill_seconds'] or 0:.2f} s; backfill outbox {b['outbox']}"]
    if "local" in m:
        lo = m["local"]
        out += [f"\nlocal Prefect: runs {[round(x, 2) for x in lo['ticks']]}, one-task flows "
                f"{[round(x, 2) for x in lo['flows']]}, server start {lo['server_start']:.1f} s; before (temporary "
                f"server per process) {[round(x, 2) for x in lo['ephemeral']]}"
                + (f", failed: {sorted(set(lo['ephemeral_failed']))}" if lo["ephemeral_failed"] else "")]
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
