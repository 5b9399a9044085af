"""What an operator should look at after a tick, in words: pure functions over results and summaries.

One definition serves the flow run's state message (what the runs list shows), the ordering of
every per-booking table (failures first, in SQL and in Python alike) and the summary artifact.
"""

from __future__ import annotations

import re

from booking_cron.domain.texts.plan import SENDER_NOT_ASSIGNED

# A per-booking result needs attention when its outcome is one of these, whatever the step...
ALARM_OUTCOMES = ("rejected", "error", "unknown", "failed")
# ...or when a deduction did not happen for a reason someone has to act on.
PACK_PROBLEMS = ("expired", "unpaid", "exhausted", "not_found", "purchase_mismatch", "booking_not_found")
# Worth a look, but expected in a normal tick (no pack, opted out, quiet hours, ...).
NOTABLE_OUTCOMES = ("not_deducted", "skipped", "expired", "cancelled", "deferred", "claim_lost")

# Rank 0: needs attention; 1: notable; 2: went as planned.
ATTENTION, NOTABLE, FINE = 0, 1, 2
# The name of a tick's final state (type COMPLETED) when something needs attention: the runs list
# shows the state's name, not its message. The overdue automation counts it as a completed tick.
NEEDS_ATTENTION = "Needs attention"
# The `attention` cell of a per-booking row that needs attention, in the tick-results artifact.
ATTENTION_MARK = "⚠ needs attention"
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
    "text of unknown fate": "unresolved for over an hour (age shown): the provider cannot say whether it has it; "
                            "each tick looks it up again and never resends it blindly; check Twilio's status and log",
    "text held for its sender": "its org names a sender not assigned to it: `booking-cron doctor` says which and the fix",
}


# An unknown text younger than the limit (sms/sender.py UNRESOLVED_LIMIT) is being reconciled by
# the ticks themselves; its reason says so by not starting with this. Older: `unresolved_<h>h_<why>`.
UNRESOLVED_PREFIX = "unresolved_"
_UNRESOLVED_HOURS = re.compile(r"^unresolved_(\d+)h")


def reconciling(outcome: str, reason: str | None) -> bool:
    """An unknown text the next ticks look up again on their own, not yet a person's problem."""
    return outcome == "unknown" and bool(reason and not reason.startswith(UNRESOLVED_PREFIX))


def rank(outcome: str, reason: str | None) -> int:
    """ATTENTION, NOTABLE or FINE for one per-booking result."""
    if reconciling(outcome, reason):
        return NOTABLE
    if (outcome in ALARM_OUTCOMES or (outcome == "not_deducted" and reason in PACK_PROBLEMS)
            or (outcome == "queued" and reason == SENDER_NOT_ASSIGNED)):  # held until its sender is assigned
        return ATTENTION
    return NOTABLE if outcome in NOTABLE_OUTCOMES else FINE


def failures_first_sql(outcome: str, reason: str) -> str:
    """`rank`, then OUTCOME_ORDER, as SQL `order by` terms over two columns (parameters below)."""
    return (f"case when {outcome} = 'unknown' and {reason} is not null and {reason} not like 'unresolved\\_%%' "
            f"then {NOTABLE} when {outcome} = any(%(alarm_outcomes)s) or ({outcome} = 'not_deducted' "
            f"and {reason} = any(%(pack_problems)s)) or ({outcome} = 'queued' and {reason} = %(sender_not_assigned)s) "
            f"then {ATTENTION} "
            f"when {outcome} = any(%(notable_outcomes)s) then {NOTABLE} else {FINE} end, "
            f"coalesce(array_position(%(outcome_order)s::text[], {outcome}), {len(OUTCOME_ORDER)})")


FAILURES_FIRST_PARAMS = {"alarm_outcomes": list(ALARM_OUTCOMES), "pack_problems": list(PACK_PROBLEMS),
                   "notable_outcomes": list(NOTABLE_OUTCOMES), "outcome_order": list(OUTCOME_ORDER),
                   "sender_not_assigned": SENDER_NOT_ASSIGNED}


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
    unresolved = {r: n for r, n in reasons.get("unknown", {}).items() if not reconciling("unknown", r)}
    unknown = sum(unresolved.values())
    if not reasons:  # a summary from before text_reasons existed: failed counts unknown too
        failed = sum(summary.get("failed", {}).values())
    if failed:
        items.append(("failed text", failed, plural(failed, "failed text", "failed texts")))
    if unknown:
        hours = [int(m.group(1)) for m in map(_UNRESOLVED_HOURS.match, unresolved) if m]
        age = f" (unresolved {max(hours)} h+)" if hours else ""
        items.append(("text of unknown fate", unknown,
                      plural(unknown, "text of unknown fate", "texts of unknown fate") + age))
    if held := reasons.get("queued", {}).get(SENDER_NOT_ASSIGNED, 0):  # waits, unsent, until its sender is assigned
        items.append(("text held for its sender", held,
                      plural(held, "text held for its sender", "texts held for their sender")))
    return sorted(items, key=lambda item: -item[1])


def needs_attention(summary: dict) -> int:
    return sum(n for _, n, _ in attention_items(summary))


def headline(summary: dict) -> str:
    """What the tick did, in one clause: '62 completed, 21 deducted, 14 texts sent'."""
    return f"{_done(summary)}, {_sent(summary)}"


def _done(summary: dict) -> str:
    return f"{summary.get('completed', 0)} completed, {summary.get('deducted', 0)} deducted"


def _sent(summary: dict) -> str:
    sent = f"{plural(sum(summary.get('sent', {}).values()), 'text', 'texts')} sent"
    return f"{sent}, {summary['reconciled']} reconciled" if summary.get("reconciled") else sent


def reconciling_count(summary: dict) -> int:
    """Texts of unknown fate still being looked up (younger than the limit)."""
    return sum(n for r, n in summary.get("text_reasons", {}).get("unknown", {}).items() if reconciling("unknown", r))


def attention_line(items: list[tuple[str, int, str]]) -> str:
    """'11 need attention: 7 expired packs, 4 unpaid packs'."""
    total = sum(n for _, n, _ in items)
    return f"{total} {'needs' if total == 1 else 'need'} attention: " + ", ".join(p for _, _, p in items)


def state_name(summary: dict) -> str:
    """'Needs attention' when anything does, else Prefect's own 'Completed'."""
    return NEEDS_ATTENTION if attention_items(summary) else "Completed"


def state_message(summary: dict) -> str:
    """The flow run's state message: what needs attention right after the counts, since only its
    first ~70 characters show in the UI's side panels, e.g.
    '62 completed, 21 deducted; 11 need attention: 7 expired packs, 4 unpaid packs; 5 texts sent'."""
    items = attention_items(summary)
    parts = [_done(summary), attention_line(items) if items else "nothing needs attention", _sent(summary)]
    if pending := reconciling_count(summary):
        parts.append(f"{plural(pending, 'text', 'texts')} of unknown fate being looked up")
    waiting = summary.get("text_reasons", {}).get("queued", {}).get("no_sms_provider", 0)
    if waiting:
        parts.append(f"{plural(waiting, 'text waits', 'texts wait')} for an SMS provider")
    message = "; ".join(parts)
    return f"dry run: {message}" if summary.get("dry_run") else message
