"""The webhooks' pure decisions: reply words, status order, form parsing, numbers."""

from __future__ import annotations

import pytest

from booking_cron.texts.phones import e164_or_none, region_for_timezone
from booking_cron.webhooks import rules


@pytest.mark.parametrize("body, action", [
    ("STOP", "opt_out"), (" stopall ", "opt_out"), ("Unsubscribe\n", "opt_out"), ("cancel", "opt_out"),
    ("END", "opt_out"), ("quit", "opt_out"), ("REVOKE", "opt_out"), ("optout", "opt_out"),
    ("START", "opt_in"), (" unstop", "opt_in"), ("y", "confirm"), ("Yes ", "confirm"),
    ("stop please", "other"), ("yes!", "other"), ("", "other"), (None, "other"), ("STOP STOP", "other"),
])
def test_reply_words(body, action):
    assert rules.reply_action(body) == action


@pytest.mark.parametrize("current, reported, after", [
    ("sent", "delivered", "delivered"), ("sent", "undelivered", "failed"), ("sent", "failed", "failed"),
    ("sent", "read", "delivered"), ("sent", "sent", None), ("sent", "queued", None), ("sent", "sending", None),
    ("delivered", "sent", None), ("delivered", "undelivered", None), ("delivered", "delivered", None),
    ("failed", "delivered", None), ("failed", "sent", None), ("sent", "no-such-status", None),
    ("queued", "delivered", None), ("cancelled", "delivered", None), ("sent", " DELIVERED ", "delivered"),
])
def test_a_status_only_moves_forward(current, reported, after):
    assert rules.status_after(current, reported) == after


def test_only_dead_number_codes_suppress():
    assert {code: rules.suppression_reason(code) for code in ("30003", "30005", "30006", "21610", "21614")} == {
        "30003": "invalid_number", "30005": "invalid_number", "30006": "invalid_number", "21610": "opt_out",
        "21614": "invalid_number"}
    assert [rules.suppression_reason(c) for c in ("30007", "30008", "", None)] == [None] * 4


def test_forms_parse_strictly():
    assert rules.parse_form(b"MessageSid=SM1&Body=Hi+there%21&Empty=") == {
        "MessageSid": "SM1", "Body": "Hi there!", "Empty": ""}
    assert rules.parse_form(b"") == {}
    for junk in (b"\xff\xfe", b"a=%ff", b"no-equals-sign", b"a=1&a=2", b"a=" + b"x" * 5000, b"a=%00"):
        with pytest.raises(rules.BadForm):
            rules.parse_form(junk)
    assert rules.missing_fields({"MessageSid": "SM1", "From": " "}, ("MessageSid", "From", "To")) == ["From", "To"]


def test_twiml_escapes_its_message():
    assert rules.twiml() == '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
    assert "<Message>a &lt;b&gt; &amp; c</Message>" in rules.twiml("a <b> & c")


def test_numbers_stored_by_hand_read_in_the_org_country():
    assert region_for_timezone("Australia/Brisbane") == "AU"
    assert region_for_timezone("Europe/London") == "GB"
    assert region_for_timezone("Not/AZone") is None
    assert e164_or_none("0412 399 002", "Australia/Brisbane") == "+61412399002"
    assert e164_or_none("07911 123456", "Europe/London") == "+447911123456"
    assert e164_or_none("0412 399 002", "Not/AZone") is None
    assert e164_or_none("call me", "Australia/Brisbane") is None
    assert rules.national_digits("+61412399002") == "0412399002"
