"""Pure tests for booking_cron.domain.texts: rendering, quiet hours, phone numbers."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2.sandbox import SandboxedEnvironment

from booking_cron.domain.texts import phones, quiet_hours, render
from booking_cron.domain.texts.phones import PhoneError, mask_phone, mask_phones_in_text, normalize_e164
from booking_cron.domain.texts.quiet_hours import (
    adjust_send_time,
    in_quiet_hours,
    next_allowed_send,
    quiet_window_around,
)
from booking_cron.domain.texts.render import (
    DEFAULT_TEMPLATES,
    DEFAULT_UNCONFIRMED_TEMPLATE,
    MAX_BODY_CHARS,
    PLACEHOLDERS,
    TemplateError,
    clean_text,
    first_name,
    format_session_datetime,
    location_text,
    render_body,
    session_summary,
)

UTC = timezone.utc
SYD = "Australia/Sydney"
NY = "America/New_York"
VARS = {
    "client_name": "Ann", "coach_name": "Bob", "session_datetime": "Tue 24 Nov, 9:30am",
    "location": "online", "feedback_link": "https://x.test/f/1", "sessions_remaining": 5,
    "sessions_booked": 2, "session_summary": "You have used 3 of your 8 sessions, with 2 booked and 3 more to book.",
}


def local(tz: str, *args, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(tz), fold=fold)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def reason(exc_info) -> str:
    return exc_info.value.reason


# ---------------------------------------------------------------- render

def test_render_all_placeholders_and_strip():
    tpl = "  " + " ".join("{{" + p + "}}" for p in sorted(PLACEHOLDERS)) + "\n\n"
    out = render_body(tpl, VARS)
    assert out == out.strip() and "Ann" in out and "5" in out and "https://x.test/f/1" in out


def test_render_uses_sandbox_strict_no_autoescape():
    assert isinstance(render._ENV, SandboxedEnvironment)
    assert render._ENV.autoescape is False
    assert render_body("{{client_name}}", {"client_name": "<Tom & Jo>"}) == "<Tom & Jo>"


def test_defaults_render_with_full_variables_and_are_short():
    assert set(DEFAULT_TEMPLATES) == {"session_reminder", "feedback_request", "unconfirmed_reminder"}
    for tpl in DEFAULT_TEMPLATES.values():
        assert len(render_body(tpl, VARS)) <= 160
    out = render_body(DEFAULT_UNCONFIRMED_TEMPLATE, VARS)
    assert out == ("Hi Ann, please confirm your session with Bob on Tue 24 Nov, 9:30am. "
                   "Reply YES to confirm.")


@pytest.mark.parametrize("tpl,named", [
    ("Hi {{ nmae }}", "{{nmae}}"),
    ("{{client_name}} {{zzz}} {{aaa}}", "{{aaa}}, {{zzz}}"),
    ("{{ range }}", "{{range}}"),  # jinja globals are not available
])
def test_unknown_placeholder_is_named(tpl, named):
    with pytest.raises(TemplateError) as ei:
        render_body(tpl, VARS)
    assert reason(ei) == "unknown_placeholder" and named in str(ei.value)


def test_placeholder_known_but_not_supplied_is_unknown():
    with pytest.raises(TemplateError) as ei:
        render_body("Hi {{client_name}} {{location}}", {"client_name": "Ann"})
    assert reason(ei) == "unknown_placeholder" and "location" in ei.value.message


@pytest.mark.parametrize("tpl", ["Hi {{ client_name", "{% if %}", "{{ }}", "{% endfor %}"])
def test_syntax_errors(tpl):
    with pytest.raises(TemplateError) as ei:
        render_body(tpl, VARS)
    assert reason(ei) == "template_syntax"
    assert isinstance(ei.value, ValueError)


@pytest.mark.parametrize("tpl", [
    "{{ ''.__class__.__mro__ }}",
    "{{ client_name.__class__.__init__.__globals__ }}",
    "{{ client_name['__class__'] }}",
    "{{ self._TemplateReference__context }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{% for c in [].__class__.__base__.__subclasses__() %}{{c}}{% endfor %}",
    "{{ 9**9**9 }}",
    "{{ 'a' * 100000000 }}",
    "{{ client_name|upper }}",
    "{% set x = 1 %}{{ client_name }}",
    "{{ " + "(" * 3000 + "client_name" + ")" * 3000 + " }}",
])
def test_ssti_and_expressions_rejected(tpl):
    with pytest.raises(TemplateError) as ei:
        render_body(tpl, VARS)
    assert reason(ei) in {"template_unsafe", "unknown_placeholder", "template_syntax"}


def test_ssti_classic_is_template_unsafe():
    with pytest.raises(TemplateError) as ei:
        render_body("{{ ''.__class__.__mro__ }}", VARS)
    assert reason(ei) == "template_unsafe"


def test_values_are_not_reevaluated_as_templates():
    out = render_body("Hi {{client_name}}", {"client_name": "{{ coach_name }} {% x %}"})
    assert out == "Hi {{ coach_name }} {% x %}"


def test_control_characters_removed_from_values():
    out = render_body("Hi {{client_name}}!", {"client_name": "A\x00n\x1b\x07n\r\x7f\x85"})
    assert out == "Hi Ann!"


def test_control_characters_removed_from_template_keeping_newlines():
    assert render_body("a\r\nb\x00c\td", {}) == "a\nbcd"


def test_none_and_numbers_render_as_text():
    assert render_body("[{{a}}][{{b}}]", {"a": None, "b": 0}) == "[][0]"


def test_empty_body():
    for tpl in ["", "   \n ", "{{location}}", "{# only a comment #}"]:
        with pytest.raises(TemplateError) as ei:
            render_body(tpl, {"location": "  "})
        assert reason(ei) == "empty_body"


def test_body_length_limit():
    assert len(render_body("x" * MAX_BODY_CHARS, {})) == 1600
    with pytest.raises(TemplateError) as ei:
        render_body("x" * 1601, {})
    assert reason(ei) == "body_too_long" and "1601" in str(ei.value)
    with pytest.raises(TemplateError) as ei:  # via a long value
        render_body("Hi {{client_name}}", {"client_name": "y" * 1600})
    assert reason(ei) == "body_too_long" and "1603" in str(ei.value)
    with pytest.raises(TemplateError) as ei:  # huge templates rejected before parsing
        render_body("{{" * 100_000, {})
    assert reason(ei) == "body_too_long"


def test_body_length_counts_after_strip():
    assert len(render_body("  " + "x" * 1600 + "\n\n", {})) == 1600


def test_clean_text():
    assert clean_text("a\x00b\x1b[0mc\nd\te\u202eF\u2066") == "ab[0mc\ndeF"
    assert clean_text("Zoë 👩‍👩‍👧 José") == "Zoë 👩‍👩‍👧 José"  # ZWJ / accents kept


@pytest.mark.parametrize("full,expected", [
    ("Ann Smith", "Ann"), ("  Ann\tSmith ", "AnnSmith"), ("Ann\nSmith", "Ann"),
    ("\x00Ann\x1b Smith", "Ann"), (None, "there"), ("", "there"), ("   ", "there"),
    ("\x00\x1b", "there"), ("Zoë\u00a0Smith", "Zoë"), ("Mary-Jane O'Neil", "Mary-Jane"),
])
def test_first_name(full, expected):
    assert first_name(full) == expected


@pytest.mark.parametrize("start,tz,expected", [
    (utc(2026, 11, 23, 22, 30), SYD, "Tue 24 Nov, 9:30am"),
    (utc(2026, 11, 24, 1, 0), SYD, "Tue 24 Nov, 12:00pm"),
    (utc(2026, 11, 24, 13, 5), SYD, "Wed 25 Nov, 12:05am"),
    (utc(2026, 11, 24, 6, 45), SYD, "Tue 24 Nov, 5:45pm"),
    (utc(2026, 7, 1, 14, 0), NY, "Wed 1 Jul, 10:00am"),        # EDT
    (utc(2026, 1, 1, 14, 0), NY, "Thu 1 Jan, 9:00am"),         # EST
    (local(NY, 2026, 3, 8, 3, 0), NY, "Sun 8 Mar, 3:00am"),     # just after spring forward
    (utc(2026, 1, 1, 14, 0), "UTC", "Thu 1 Jan, 2:00pm"),
])
def test_format_session_datetime(start, tz, expected):
    assert format_session_datetime(start, tz) == expected


@pytest.mark.parametrize("tz", ["Mars/Olympus", "", "Australia", "../etc/passwd", "sydney"])
def test_format_session_datetime_unknown_tz(tz):
    with pytest.raises(TemplateError) as ei:
        format_session_datetime(utc(2026, 1, 1), tz)
    assert reason(ei) == "unknown_timezone"


def test_format_session_datetime_rejects_naive():
    with pytest.raises(ValueError):
        format_session_datetime(datetime(2026, 1, 1, 9), SYD)


def test_session_summary_and_location():
    assert session_summary(3, 2, 5) == "You have used 3 of your 8 sessions, with 2 booked and 3 more to book."
    assert session_summary(4, 1, 1) == "You have used 4 of your 5 sessions, with 1 booked and none left to book."
    assert session_summary(0, 0, 1) == "You have used 0 of your 1 session, with 0 booked and 1 more to book."
    assert session_summary(0, 0, 0) == ""  # no pack: no pack line
    assert location_text("in_person") == "in person"
    assert location_text("online") == "online"
    assert location_text("outdoor") == "outdoors"
    assert location_text(" Online ") == "online"
    for other in [None, "", "moon", "in person"]:
        assert location_text(other) == ""


# ----------------------------------------------------------- quiet hours

@pytest.mark.parametrize("hour,quiet", [
    (20, False), (21, True), (23, True), (0, True), (7, True), (8, False), (12, False),
])
def test_in_quiet_hours_wrapping(hour, quiet):
    assert in_quiet_hours(local(SYD, 2026, 6, 10, hour, 30), SYD, 21, 8) is quiet


@pytest.mark.parametrize("hour,quiet", [(12, False), (13, True), (14, True), (15, False)])
def test_in_quiet_hours_non_wrapping(hour, quiet):
    assert in_quiet_hours(local(NY, 2026, 6, 10, hour), NY, 13, 15) is quiet


def test_in_quiet_hours_uses_org_zone_not_utc():
    at = utc(2026, 6, 10, 12, 0)  # 22:00 in Sydney (AEST), 08:00 in New York (EDT)
    assert in_quiet_hours(at, SYD, 21, 8) is True
    assert in_quiet_hours(at, NY, 21, 8) is False


def test_equal_hours_mean_no_quiet_hours():
    for h in range(24):
        at = local(SYD, 2026, 6, 10, h)
        assert in_quiet_hours(at, SYD, 5, 5) is False
        assert quiet_window_around(at, SYD, 5, 5) is None
        assert next_allowed_send(at, SYD, 5, 5) == at


@pytest.mark.parametrize("start,end", [(-1, 8), (21, 24), (25, 3), (True, 8), (21.0, 8)])
def test_hours_out_of_range(start, end):
    with pytest.raises(ValueError):
        in_quiet_hours(utc(2026, 1, 1), SYD, start, end)


def test_naive_datetime_and_unknown_tz_raise_value_error():
    with pytest.raises(ValueError):
        in_quiet_hours(datetime(2026, 1, 1, 22), SYD, 21, 8)
    with pytest.raises(ValueError):
        in_quiet_hours(utc(2026, 1, 1), "Nowhere/Land", 21, 8)


def test_window_around_wrapping_before_and_after_midnight():
    expected = (local(SYD, 2026, 6, 10, 21).astimezone(UTC), local(SYD, 2026, 6, 11, 8).astimezone(UTC))
    assert quiet_window_around(local(SYD, 2026, 6, 10, 22), SYD, 21, 8) == expected
    assert quiet_window_around(local(SYD, 2026, 6, 11, 3), SYD, 21, 8) == expected
    assert quiet_window_around(local(SYD, 2026, 6, 10, 21), SYD, 21, 8) == expected  # inclusive
    assert quiet_window_around(local(SYD, 2026, 6, 11, 8), SYD, 21, 8) is None        # exclusive
    assert quiet_window_around(local(SYD, 2026, 6, 10, 12), SYD, 21, 8) is None
    start, end = expected
    assert start.tzinfo is UTC and end.tzinfo is UTC


def test_window_sydney_dst_forward():
    # Sun 6 Oct 2024: 02:00 AEST -> 03:00 AEDT. The night is an hour shorter.
    start, end = quiet_window_around(local(SYD, 2024, 10, 6, 1), SYD, 21, 8)
    assert start == utc(2024, 10, 5, 11)  # 21:00 AEST
    assert end == utc(2024, 10, 5, 21)    # 08:00 AEDT
    assert end - start == timedelta(hours=10)


def test_window_sydney_dst_forward_nonexistent_boundaries():
    # 02:00 doesn't exist that day: first valid instant is 03:00 AEDT == 16:00 UTC.
    assert quiet_window_around(local(SYD, 2024, 10, 6, 4), SYD, 2, 8)[0] == utc(2024, 10, 5, 16)
    assert quiet_window_around(local(SYD, 2024, 10, 6, 1), SYD, 22, 2)[1] == utc(2024, 10, 5, 16)
    assert in_quiet_hours(utc(2024, 10, 5, 16), SYD, 22, 2) is False
    # A window lying entirely in the gap never happens.
    for minute in range(0, 24 * 60, 7):
        at = utc(2024, 10, 5, 6) + timedelta(minutes=minute)
        assert in_quiet_hours(at, SYD, 2, 3) is False


def test_window_sydney_dst_back():
    # Sun 7 Apr 2024: 03:00 AEDT -> 02:00 AEST. The night is an hour longer.
    start, end = quiet_window_around(local(SYD, 2024, 4, 7, 1), SYD, 21, 8)
    assert start == utc(2024, 4, 6, 10)   # 21:00 AEDT
    assert end == utc(2024, 4, 6, 22)     # 08:00 AEST
    assert end - start == timedelta(hours=12)
    # Ambiguous 02:00: fold=0 (the first, AEDT, occurrence).
    first_two = utc(2024, 4, 6, 15)
    assert quiet_window_around(local(SYD, 2024, 4, 7, 3), SYD, 2, 8)[0] == first_two
    assert quiet_window_around(local(SYD, 2024, 4, 7, 1), SYD, 22, 2)[1] == first_two
    # The second 02:30 (fold=1) is after quiet hours ending at 02:00.
    assert in_quiet_hours(local(SYD, 2024, 4, 7, 2, 30, fold=1), SYD, 22, 2) is False


def test_windows_merge_when_dst_swallows_the_open_hour():
    # Quiet 03:00 -> 02:00 leaves only 02:xx open, which doesn't exist on 6 Oct 2024.
    start, end = quiet_window_around(local(SYD, 2024, 10, 6, 1, 30), SYD, 3, 2)
    assert start == local(SYD, 2024, 10, 5, 3).astimezone(UTC)
    assert end == local(SYD, 2024, 10, 7, 2).astimezone(UTC)
    assert not in_quiet_hours(end, SYD, 3, 2)
    assert next_allowed_send(local(SYD, 2024, 10, 6, 4), SYD, 3, 2) == end

def test_window_new_york_dst():
    # Sun 10 Mar 2024: 02:00 EST -> 03:00 EDT.
    assert quiet_window_around(local(NY, 2024, 3, 10, 5), NY, 21, 8) == (
        utc(2024, 3, 10, 2), utc(2024, 3, 10, 12))
    assert quiet_window_around(local(NY, 2024, 3, 10, 4), NY, 2, 6)[0] == utc(2024, 3, 10, 7)
    # Sun 3 Nov 2024: 02:00 EDT -> 01:00 EST; 01:xx is ambiguous.
    assert quiet_window_around(local(NY, 2024, 11, 3, 5), NY, 21, 8) == (
        utc(2024, 11, 3, 1), utc(2024, 11, 3, 13))
    assert quiet_window_around(local(NY, 2024, 11, 3, 5), NY, 1, 8)[0] == utc(2024, 11, 3, 5)
    assert quiet_window_around(local(NY, 2024, 11, 3, 0), NY, 22, 1)[1] == utc(2024, 11, 3, 5)


def test_reminder_due_at_22_moves_to_2059_local():
    due = local(SYD, 2026, 6, 10, 22, 0)
    expires = local(SYD, 2026, 6, 11, 9, 0)  # session start
    for kind in ("session_reminder", "unconfirmed_reminder"):
        sent = adjust_send_time(due, expires, kind, SYD, 21, 8)
        assert sent == local(SYD, 2026, 6, 10, 20, 59)
        assert sent.astimezone(ZoneInfo(SYD)).strftime("%H:%M") == "20:59"


def test_reminder_due_after_midnight_moves_to_previous_evening():
    sent = adjust_send_time(local(NY, 2026, 6, 11, 6), local(NY, 2026, 6, 11, 9),
                            "session_reminder", NY, 21, 8)
    assert sent == local(NY, 2026, 6, 10, 20, 59)


def test_feedback_due_at_23_moves_to_8_next_day():
    due = local(SYD, 2026, 6, 10, 23, 0)
    sent = adjust_send_time(due, due + timedelta(days=2), "feedback_request", SYD, 21, 8)
    assert sent == local(SYD, 2026, 6, 11, 8, 0)


def test_feedback_over_dst_forward_night_goes_to_8_aedt():
    due = local(SYD, 2024, 10, 5, 23)
    assert adjust_send_time(due, due + timedelta(days=1), "feedback_request", SYD, 21, 8) == \
        utc(2024, 10, 5, 21)


def test_not_quiet_is_unchanged():
    due = local(SYD, 2026, 6, 10, 15, 17)
    for kind in ("session_reminder", "unconfirmed_reminder", "feedback_request"):
        assert adjust_send_time(due, due + timedelta(hours=1), kind, SYD, 21, 8) is due


def test_expiry_makes_it_none():
    due = local(SYD, 2026, 6, 10, 23)
    assert adjust_send_time(due, local(SYD, 2026, 6, 11, 8), "feedback_request", SYD, 21, 8) is None
    assert adjust_send_time(due, local(SYD, 2026, 6, 11, 7), "feedback_request", SYD, 21, 8) is None
    ok = local(SYD, 2026, 6, 11, 8, 1)
    assert adjust_send_time(due, ok, "feedback_request", SYD, 21, 8) == local(SYD, 2026, 6, 11, 8)
    noon = local(SYD, 2026, 6, 10, 12)
    assert adjust_send_time(noon, noon, "session_reminder", SYD, 21, 8) is None
    # Reminder already past its expiry can't be rescued by moving earlier either.
    assert adjust_send_time(due, local(SYD, 2026, 6, 10, 20), "session_reminder", SYD, 21, 8) is None


def test_earlier_move_is_within_a_day_of_due():
    due = local(SYD, 2026, 6, 11, 7, 59)  # last minute of an 11h window
    sent = adjust_send_time(due, due + timedelta(hours=1), "session_reminder", SYD, 21, 8)
    assert due - timedelta(hours=24) < sent < due


def test_unknown_kind_raises():
    with pytest.raises(ValueError):
        adjust_send_time(utc(2026, 1, 1), utc(2026, 1, 2), "birthday", SYD, 21, 8)


def test_next_allowed_send():
    now = local(SYD, 2026, 6, 10, 15)
    assert next_allowed_send(now, SYD, 21, 8) is now
    assert next_allowed_send(local(SYD, 2026, 6, 10, 23, 45), SYD, 21, 8) == local(SYD, 2026, 6, 11, 8)
    assert next_allowed_send(local(NY, 2024, 11, 3, 1, 30, fold=1), NY, 21, 8) == utc(2024, 11, 3, 13)


ZONES = [SYD, NY, "UTC", "Europe/London", "Australia/Lord_Howe", "Asia/Kolkata",
         "America/Santiago", "Pacific/Auckland"]
aware = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1),
                     timezones=st.just(UTC))
hours = st.integers(0, 23)


@settings(max_examples=400, deadline=None)
@given(due=aware, ttl=st.integers(0, 3 * 24 * 60), tz=st.sampled_from(ZONES),
       start=hours, end=hours,
       kind=st.sampled_from(["session_reminder", "unconfirmed_reminder", "feedback_request"]))
def test_property_adjust_never_quiet_never_expired(due, ttl, tz, start, end, kind):
    expires = due + timedelta(minutes=ttl)
    sent = adjust_send_time(due, expires, kind, tz, start, end)
    if sent is not None:
        assert not in_quiet_hours(sent, tz, start, end)
        assert sent < expires
        if kind == "feedback_request":
            assert sent >= due
        else:
            assert sent <= due
    elif not in_quiet_hours(due, tz, start, end):
        assert due >= expires


@settings(max_examples=400, deadline=None)
@given(at=aware, tz=st.sampled_from(ZONES), start=hours, end=hours)
def test_property_window_matches_hour_rule(at, tz, start, end):
    window = quiet_window_around(at, tz, start, end)
    assert (window is not None) == in_quiet_hours(at, tz, start, end)
    if window is not None:
        lo, hi = window
        eps = timedelta(microseconds=1)
        assert lo <= at < hi
        assert in_quiet_hours(lo, tz, start, end) and in_quiet_hours(hi - eps, tz, start, end)
        assert not in_quiet_hours(hi, tz, start, end)
        assert not in_quiet_hours(lo - eps, tz, start, end)
        assert next_allowed_send(at, tz, start, end) == hi


def test_dst_nights_scan_matches_window():
    # Minute-by-minute over DST nights: window membership == hour rule.
    for tz, day in [(SYD, utc(2024, 10, 5, 6)), (SYD, utc(2024, 4, 6, 6)),
                    (NY, utc(2024, 3, 9, 18)), (NY, utc(2024, 11, 2, 18))]:
        for start, end in [(21, 8), (2, 3), (1, 2), (22, 2), (3, 2)]:
            for minute in range(0, 20 * 60, 10):
                at = day + timedelta(minutes=minute)
                w = quiet_window_around(at, tz, start, end)
                assert (w is not None) == in_quiet_hours(at, tz, start, end)
                if w:
                    assert w[0] <= at < w[1]


# ---------------------------------------------------------------- phones

@pytest.mark.parametrize("raw,region,expected", [
    ("+61 412 345 678", None, "+61412345678"),
    ("+61412345678", "US", "+61412345678"),
    ("0412 345 678", "AU", "+61412345678"),
    ("0412-345-678", "au", "+61412345678"),
    ("(212) 555-0123", "US", "+12125550123"),
    ("  +1 212 555 0123 ", None, "+12125550123"),
    ("tel:+61412345678", None, "+61412345678"),
])
def test_normalize_e164_ok(raw, region, expected):
    assert normalize_e164(raw, region) == expected


@pytest.mark.parametrize("raw,region,why", [
    (None, None, "missing_phone"),
    ("", "AU", "missing_phone"),
    ("   ", None, "missing_phone"),
    ("hello", None, "malformed_phone"),
    ("hello", "AU", "malformed_phone"),
    ("+abc", None, "malformed_phone"),
    ("0412 345 678", None, "local_format_phone"),
    ("61412345678", None, "local_format_phone"),
    ("0412 345 678", "XX", "local_format_phone"),  # unsupported region == none
    ("+61 000 000 000", None, "invalid_phone"),
    ("+6112", None, "invalid_phone"),
    ("+999 1234567", None, "invalid_phone"),
    ("0412", "AU", "invalid_phone"),
])
def test_normalize_e164_errors(raw, region, why):
    with pytest.raises(PhoneError) as ei:
        normalize_e164(raw, region)
    assert reason(ei) == why
    assert isinstance(ei.value, ValueError)


@pytest.mark.parametrize("phone,expected", [
    ("+61412345678", "+6141*****678"),
    ("+12125550123", "+1212*****123"),
    ("+4420794606180", "+4420*****180"),
    (None, "-"),
    ("", "-"),
    ("12345", "***45"),
    ("+123", "**23"),
    ("ab", "**"),
])
def test_mask_phone(phone, expected):
    assert mask_phone(phone) == expected


def test_mask_phone_never_leaks_the_middle():
    masked = mask_phone("+61412345678")
    assert "2345" not in masked and "412345678" not in masked


def test_mask_phones_in_text():
    line = "sent to +61412345678, retry +12125550123; id 12345678 code +123"
    assert mask_phones_in_text(line) == (
        "sent to +6141*****678, retry +1212*****123; id 12345678 code +123")
    assert mask_phones_in_text("no phones here") == "no phones here"
    assert mask_phones_in_text("") == ""


@settings(max_examples=200, deadline=None)
@given(digits=st.text(alphabet="0123456789", min_size=8, max_size=15),
       prefix=st.text(alphabet="abc :=", max_size=5), suffix=st.text(alphabet="xyz ,.", max_size=5))
def test_property_masked_text_hides_middle_digits(digits, prefix, suffix):
    out = mask_phones_in_text(f"{prefix}+{digits}{suffix}")
    assert f"+{digits}" not in out
    assert out == f"{prefix}+{digits[:4]}*****{digits[-3:]}{suffix}"


def test_modules_stay_small():
    import inspect
    for mod in (render, quiet_hours, phones):
        assert len(inspect.getsource(mod).splitlines()) <= 200
