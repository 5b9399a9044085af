"""The bench's output: one figures table (figure, ours, baseline, ratio, target, met) and details."""

from __future__ import annotations

from dataclasses import dataclass

STATEMENT_CONSTANT = 20  # target: statements <= n / 1000 + this


@dataclass
class Figure:
    no: str
    figure: str
    ours: str
    baseline: str
    ratio: str
    target: str
    met: bool | None  # None: reported, no target

    def cells(self) -> list[str]:
        met = "n/a" if self.met is None else ("yes" if self.met else "**no**")
        return [self.no, self.figure, self.ours, self.baseline, self.ratio, self.target, met]


def secs(x: float) -> str:
    return f"{x:.2f} s"


def mib(x: float) -> str:
    return f"{x / 2**20:.0f} MiB"


def count(n: int) -> str:
    return f"{n:,}"


def markdown(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def comparison_1(tick: dict, raw: dict, seed_app: dict, process: dict | None = None) -> list[Figure]:
    n = tick["n"]
    span = tick["steps"]["complete+deduct"]
    limit = n / 1000 + STATEMENT_CONSTANT
    extrapolated = f" (extrapolated from {seed_app['measured_over']:,})" if seed_app.get("extrapolated") else ""
    whole = []
    if process is not None:
        whole = [Figure("1", f"whole `booking-cron run` process, {n:,} due", secs(process["seconds"]),
                        f"(b) seed app's loop: {secs(seed_app['seconds'])}{extrapolated}",
                        f"{seed_app['seconds'] / process['seconds']:.1f}x faster", ">= 5x faster",
                        seed_app["seconds"] >= 5 * process["seconds"])]
    return [
        Figure("1", f"complete+deduct steps in the tick, {n:,} due", secs(span),
               f"(a) raw SQL, one statement: {secs(raw['seconds'])}", f"{span / raw['seconds']:.2f}x",
               "<= 1.5x", span <= 1.5 * raw["seconds"]),
        *whole,
        Figure("1", f"whole tick incl. Prefect, {n:,} due", secs(tick["seconds"]),
               f"(b) seed app's loop: {secs(seed_app['seconds'])}{extrapolated}",
               f"{seed_app['seconds'] / tick['seconds']:.1f}x faster", ">= 5x faster",
               seed_app["seconds"] >= 5 * tick["seconds"]),
        Figure("1", f"statements sent to PostgreSQL, {n:,} due", count(tick["statements"]),
               f"(b): {count(seed_app['statements'])}", f"{seed_app['statements'] / tick['statements']:.0f}x fewer",
               f"<= n/1000 + {STATEMENT_CONSTANT} = {limit:,.0f}", tick["statements"] <= limit),
    ]


def comparison_2(ticks: dict[int, dict]) -> list[Figure]:
    sizes = sorted(ticks)
    figures = []
    for small, big in zip(sizes, sizes[1:]):
        t_small, t_big = ticks[small]["seconds"], ticks[big]["seconds"]
        growth = big / small
        figures.append(Figure("2", f"tick time {big:,} vs {small:,} due", secs(t_big), secs(t_small),
                              f"{t_big / t_small:.2f}x for {growth:.0f}x the bookings",
                              f"<= {growth:.0f}x (linear or better)", t_big / t_small <= growth))
    if len(sizes) > 1:
        lo, hi = ticks[sizes[0]]["rss_peak"], ticks[sizes[-1]]["rss_peak"]
        figures.append(Figure("2", f"peak RSS {sizes[-1]:,} vs {sizes[0]:,} due", mib(hi), mib(lo),
                              f"{hi / lo:.2f}x", "<= 1.5x", hi <= 1.5 * lo))
    return figures


def comparison_3(fixed: dict) -> list[Figure]:
    ratio = fixed["tick_median"] / fixed["flow_median"]
    return [Figure("3", f"tick with nothing due (median of {fixed['runs']})", secs(fixed["tick_median"]),
                   f"one-task flow: {secs(fixed['flow_median'])}", f"{ratio:.2f}x", "<= 1.5x", ratio <= 1.5)]


def comparison_4(texts: dict) -> list[Figure]:
    ratio = texts["tick_seconds"] / texts["ideal"]
    clean = texts["duplicates"] == 0 and texts["accepted"] == texts["n"] == texts["outbox_keys"]
    return [
        Figure("4", f"{texts['n']:,} due texts through the sandbox (whole tick)", secs(texts["tick_seconds"]),
               f"ideal {texts['n']:,} / 50 per s: {secs(texts['ideal'])}", f"{ratio:.3f}x", "<= 1.15x",
               ratio <= 1.15),
        Figure("4", "most texts accepted in any one second", str(texts["max_in_any_second"]), "rate limit 50",
               "", "<= 50", texts["max_in_any_second"] <= 50),
        Figure("4", "texts accepted / distinct numbers / duplicates",
               f"{texts['accepted']:,} / {texts['distinct_numbers']:,} / {texts['duplicates']}",
               f"{texts['n']:,} due", "", "each once", clean),
    ]


def comparison_5(shards: dict) -> list[Figure]:
    return [
        Figure("5", f"4 shard ticks at once vs one tick, {shards['n']:,} due", secs(shards["shards_window"]),
               f"one tick: {secs(shards['single_seconds'])}", f"{shards['speedup']:.2f}x speed-up",
               "report (2 cores)", None),
        Figure("5", "same end state (bookings, packs, ledger digests)",
               "same" if shards["same_end_state"] else "DIFFERENT", "", "", "identical", shards["same_end_state"]),
    ]


def comparison_6(b: dict) -> list[Figure]:
    ratio = b["backfill_seconds"] / b["tick_seconds"]
    days = b.get("days", 30)
    target = 3 if days >= 365 else 10  # a year's backfill: issue 18's 3x; a month's: issue 11's 10x
    on_pg = f"{b['postgres_per_slot_ms']:.1f} ms" if b.get("postgres_per_slot_ms") is not None else "not run"
    return [
        Figure("6", f"{days}-day backfill, {b['slots']:,} slots of 10 min, {b['data']['bookings']:,} bookings "
                    "(whole process, SQLite Prefect server)", secs(b["backfill_seconds"]),
               f"one tick at the last slot: {secs(b['tick_seconds'])}", f"{ratio:.1f}x", f"<= {target}x",
               ratio <= target),
        Figure("6", "backfill cost per slot: SQLite / PostgreSQL Prefect server",
               f"{b['per_slot_ms']:.1f} ms / {on_pg}", "", "", "report", None),
        Figure("6", "same end state as the tick (bookings, packs, ledger digests)",
               "same" if b["same_end_state"] else "DIFFERENT", "", "", "identical", b["same_end_state"]),
    ]


def comparison_9(big: dict, small: dict) -> list[Figure]:
    """One tick over a million due bookings: within a minute, and its peak memory near a small tick's."""
    n, m = big["n"], small["n"]
    lo, hi = small["rss_peak"], big["rss_peak"]
    return [
        Figure("9", f"one tick over {n:,} due (the tick() call; process {secs(big['process_wall'])})",
               secs(big["seconds"]), "60 s", f"{big['seconds'] / 60:.2f}x", "<= 60 s", big["seconds"] <= 60),
        Figure("9", f"peak RSS {n:,} vs {m:,} due", mib(hi), mib(lo), f"{hi / lo:.2f}x", "<= 1.5x", hi <= 1.5 * lo),
    ]


def figures_table(figures: list[Figure]) -> str:
    return markdown(["#", "figure", "ours", "baseline", "ratio", "target", "met"], [f.cells() for f in figures])


def scaling_table(ticks: dict[int, dict]) -> str:
    rows = []
    for n in sorted(ticks):
        t = ticks[n]
        s = t["steps"]
        rows.append([f"{n:,}", secs(t["seconds"]), f"{1000 * t['seconds'] / n:.1f} ms",
                     secs(s.get("fetch_due", 0)), secs(s.get("complete_span", s.get("complete", 0))),
                     f"{secs(s.get('deduct_span', 0))} ({s.get('deduct_batches', 0)} batches)",
                     secs(s.get("complete+deduct", 0)), secs(s.get("run_counts", 0) + s.get("results_frame", 0)),
                     f"{t['cpu_seconds']:.1f} s", count(t["statements"]), mib(t["rss_before"]), mib(t["rss_peak"])])
    return markdown(["due", "tick", "per 1k", "fetch", "complete", "deduct span", "complete+deduct",
                     "summary+publish", "tick CPU", "statements", "RSS before", "peak RSS"], rows)


def comparison_7(local: dict) -> list[Figure]:
    ratio = local["tick_median"] / local["flow_median"]
    return [
        Figure("7", f"nothing-due `booking-cron run`, whole process, local Prefect server (median of {local['runs']})",
               secs(local["tick_median"]), f"one-task flow, whole process, same server: {secs(local['flow_median'])}",
               f"{ratio:.2f}x", "<= 2x", ratio <= 2.0),
        Figure("7", "before: the same tick, whole process, on Prefect's temporary server (none running)"
               + (f"; {len(local['ephemeral_failed'])} of {len(local['ephemeral'])} failed" if local["ephemeral_failed"] else ""),
               secs(local["ephemeral_median"]), f"one-task flow, whole process: {secs(local['flow_median'])}",
               f"{local['ephemeral_median'] / local['flow_median']:.2f}x", "report", None),
        Figure("7", "local Prefect server start (once per data folder, by the first command)",
               secs(local["server_start"]), "", "", "report", None),
    ]


def comparison_8(rate: dict) -> list[Figure]:
    pg, prefect, pacer = rate["postgres_seconds"], rate["prefect_seconds"], rate["pacer_seconds"]
    ms = lambda s: f"{s * 1000:.2f} ms"  # noqa: E731
    return [
        Figure("8", f"one send slot in PostgreSQL, {rate['threads']} senders at once (take_send_slot)", ms(pg),
               f"Prefect rate_limit (global concurrency limit): {ms(prefect)}", f"{prefect / pg:.1f}x cheaper",
               "cheaper than Prefect's", pg < prefect),
        Figure("8", "one send slot in PostgreSQL vs the per-process pacer it replaced", ms(pg),
               f"pacer (this process only): {ms(pacer)}", f"{pg / pacer:.0f}x dearer", "report", None),
    ]
