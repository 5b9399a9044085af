"""What an operator should look at after a tick, in words: pure functions over results and summaries.

One definition serves the flow run's state message (what the runs list shows), the ordering of
every per-booking table (failures first, in SQL and in Python alike) and the summary artifact.
"""

from __future__ import annotations

# A per-booking result needs attention when its outcome is one of these, whatever the step...
ALARM_OUTCOMES = ("rejected", "error", "unknown", "failed")
# ...or when a deduction did not happen for a reason someone has to act on.
PACK_PROBLEMS = ("expired", "unpaid", "exhausted", "not_found", "purchase_mismatch", "booking_not_found")
# Worth a look, but expected in a normal tick (no pack, opted out, quiet hours, ...).
NOTABLE_OUTCOMES = ("not_deducted", "skipped", "expired", "cancelled", "deferred", "claim_lost")

# Rank 0: needs attention; 1: notable; 2: went as planned.
ATTENTION, NOTABLE, FINE = 0, 1, 2
# Within a rank, outcomes in this order: broken bookings first, then texts, then packs.
OUTCOME_ORDER = ALARM_OUTCOMES + NOTABLE_OUTCOMES + ("completed", "deducted", "queued", "sent")

_PACK_WORDS = {  # reason -> (singular, plural)
    "expired": ("expired pack", "expired packs"),
    "unpaid": ("unpaid pack", "unpaid packs"),
    "exhausted": ("used-up pack", "used-up packs"),
    "not_found": ("pack not found", "packs not found"),
    "purchase_mismatch": ("pack of another client", "packs of another client"),
    "booking_not_found": ("booking not found", "bookings not found"),
}
WHAT_TO_DO = {
    "expired pack": "the pack expired before the session ended: sell a new pack or extend this one",
    "unpaid pack": "its payment is pending, failed or refunded: chase the payment",
    "used-up pack": "no sessions left: sell a new pack",
    "pack not found": "the booking points at a pack that does not exist: fix its purchase_id",
    "pack of another client": "the booking's pack belongs to someone else: fix its purchase_id",
    "booking not found": "the booking disappeared mid-tick: check who deleted it",
    "rejected booking": "the booking's data is broken (see the reason): fix the row",
    "failed text": "see the reason: fix the phone number, the template or the sender",
    "text of unknown fate": "the provider may have sent it: check Twilio's log before resending",
}


def rank(outcome: str, reason: str | None) -> int:
    """ATTENTION, NOTABLE or FINE for one per-booking result."""
    if outcome in ALARM_OUTCOMES or (outcome == "not_deducted" and reason in PACK_PROBLEMS):
        return ATTENTION
    return NOTABLE if outcome in NOTABLE_OUTCOMES else FINE


def failures_first_sql(outcome: str, reason: str) -> str:
    """`rank`, then OUTCOME_ORDER, as SQL `order by` terms over two columns (parameters below)."""
    return (f"case when {outcome} = any(%(alarm_outcomes)s) or ({outcome} = 'not_deducted' "
            f"and {reason} = any(%(pack_problems)s)) then {ATTENTION} "
            f"when {outcome} = any(%(notable_outcomes)s) then {NOTABLE} else {FINE} end, "
            f"coalesce(array_position(%(outcome_order)s::text[], {outcome}), {len(OUTCOME_ORDER)})")


FAILURES_FIRST_PARAMS = {"alarm_outcomes": list(ALARM_OUTCOMES), "pack_problems": list(PACK_PROBLEMS),
                   "notable_outcomes": list(NOTABLE_OUTCOMES), "outcome_order": list(OUTCOME_ORDER)}


def plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def attention_items(summary: dict) -> list[tuple[str, int, str]]:
    """(singular label, count, phrase) of everything that needs attention, biggest first."""
    items: list[tuple[str, int, str]] = []
    for reason, n in summary.get("not_deducted", {}).items():
        if reason in PACK_PROBLEMS and n:
            one, many = _PACK_WORDS[reason]
            items.append((one, n, plural(n, one, many)))
    rejected = sum(summary.get("rejected", {}).values())
    if rejected:
        items.append(("rejected booking", rejected, plural(rejected, "rejected booking", "rejected bookings")))
    reasons = summary.get("text_reasons", {})
    failed = sum(reasons.get("failed", {}).values()) + sum(reasons.get("error", {}).values())
    unknown = sum(reasons.get("unknown", {}).values())
    if not reasons:  # a summary from before text_reasons existed: failed counts unknown too
        failed = sum(summary.get("failed", {}).values())
    if failed:
        items.append(("failed text", failed, plural(failed, "failed text", "failed texts")))
    if unknown:
        items.append(("text of unknown fate", unknown, plural(unknown, "text of unknown fate", "texts of unknown fate")))
    return sorted(items, key=lambda item: -item[1])


def needs_attention(summary: dict) -> int:
    return sum(n for _, n, _ in attention_items(summary))


def headline(summary: dict) -> str:
    """What the tick did, in one clause: '62 completed, 21 deducted, 14 texts sent'."""
    return f"{_done(summary)}, {_sent(summary)}"


def _done(summary: dict) -> str:
    return f"{summary.get('completed', 0)} completed, {summary.get('deducted', 0)} deducted"


def _sent(summary: dict) -> str:
    return f"{plural(sum(summary.get('sent', {}).values()), 'text', 'texts')} sent"


def attention_line(items: list[tuple[str, int, str]]) -> str:
    """'11 need attention: 7 expired packs, 4 unpaid packs'."""
    total = sum(n for _, n, _ in items)
    return f"{total} {'needs' if total == 1 else 'need'} attention: " + ", ".join(p for _, _, p in items)


def state_message(summary: dict) -> str:
    """The flow run's state message: what needs attention right after the counts, since only its
    first ~70 characters show in the UI's side panels, e.g.
    '62 completed, 21 deducted; 11 need attention: 7 expired packs, 4 unpaid packs; 5 texts sent'."""
    items = attention_items(summary)
    parts = [_done(summary), attention_line(items) if items else "nothing needs attention", _sent(summary)]
    waiting = summary.get("text_reasons", {}).get("queued", {}).get("no_sms_provider", 0)
    if waiting:
        parts.append(f"{plural(waiting, 'text waits', 'texts wait')} for an SMS provider")
    message = "; ".join(parts)
    return f"dry run: {message}" if summary.get("dry_run") else message
