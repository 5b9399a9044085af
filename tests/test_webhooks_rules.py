"""The webhooks' pure decisions: reply words, status order, form parsing, numbers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from booking_cron.sms.twilio_codes import suppression_reason
from booking_cron.domain.texts.phones import e164_or_none, region_for_timezone
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


def test_only_dead_number_codes_suppress_whether_a_send_or_a_receipt_reports_them():
    """One table for the sender (int codes from the API) and the webhooks (string codes in receipts)."""
    assert {code: suppression_reason(code) for code in ("30003", "30005", "30006", "21610", "21614", " 21211")} == {
        "30003": "invalid_number", "30005": "invalid_number", "30006": "invalid_number", "21610": "opt_out",
        "21614": "invalid_number", " 21211": "invalid_number"}
    assert [suppression_reason(c) for c in (21211, 21610, 21614)] == ["invalid_number", "opt_out", "invalid_number"]
    assert [suppression_reason(c) for c in ("30007", "30008", "", None, 20429, "-30003", "3" * 400)] == [None] * 7


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


# --- only Twilio's fields, and no re-split of a signed request --------------------------------------

ACCOUNT = "AC" + "a1" * 16
SID, OTHER_SID = "SM" + "0f" * 16, "MM" + "e7" * 16
MEDIA = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Messages/{OTHER_SID}/Media/ME" + "3c" * 16


def inbound(**fields) -> dict[str, str]:
    """An incoming SMS as Twilio posts it, with every field it sends for one."""
    form = {"AccountSid": ACCOUNT, "ApiVersion": "2010-04-01", "Body": "STOP", "From": "+61412399002",
            "FromCity": "", "FromCountry": "AU", "FromState": "", "FromZip": "", "MessageSid": SID,
            "MessagingServiceSid": "MG" + "5d" * 16, "NumMedia": "0", "NumSegments": "1", "OptOutType": "STOP",
            "ReferralNumMedia": "0", "SmsMessageSid": SID, "SmsSid": SID, "SmsStatus": "received",
            "To": "+61280000001", "ToCity": "SYDNEY", "ToCountry": "AU", "ToState": "NSW", "ToZip": "2000"}
    return {**form, **fields}


def receipt(**fields) -> dict[str, str]:
    form = {"AccountSid": ACCOUNT, "ApiVersion": "2010-04-01", "ErrorCode": "30003", "From": "+61280000001",
            "MessageSid": SID, "MessageStatus": "undelivered", "RawDlrDoneDate": "3003120101", "SmsSid": SID,
            "SmsStatus": "undelivered", "To": "+61412399002"}
    return {**form, **fields}


def check(form, fields=rules.INBOUND_FIELDS, required=rules.INBOUND_REQUIRED, account=None):
    rules.check_form(form, fields, required, account)


def test_twilios_own_requests_pass():
    check(inbound())
    check(inbound(NumMedia="2", MediaUrl0=MEDIA, MediaContentType0="image/jpeg", MediaUrl1=MEDIA,
                  MediaContentType1="text/vcard", Body="", OptOutType="START", FromCity="FORT MEADE"))
    check(inbound(), account=ACCOUNT)
    check({"MessageSid": SID, "From": "+61412399002", "To": "+61280000001", "Body": "Y", "NumMedia": "0"})
    check(receipt(), rules.STATUS_FIELDS, rules.STATUS_REQUIRED, ACCOUNT)
    for sender in ("CoachAmy", "12345", "", "A-Z & Co"):
        check(receipt(From=sender), rules.STATUS_FIELDS, rules.STATUS_REQUIRED)
    sandbox = "ACsandbox" + "0" * 25  # not Twilio's form, but the account configured: equal is enough
    check(receipt(AccountSid=sandbox), rules.STATUS_FIELDS, rules.STATUS_REQUIRED, sandbox)


@pytest.mark.parametrize("why, form, account", [
    ("an unknown field", inbound(Hello="x"), None),
    ("a WhatsApp field", inbound(ProfileName="Ava"), None),
    ("a receipt's field on a reply", inbound(MessageStatus="sent"), None),
    ("a short MessageSid", inbound(MessageSid=SID[:-1], SmsSid=SID[:-1], SmsMessageSid=SID[:-1]), None),
    ("a long MessageSid", inbound(MessageSid=SID + "0", SmsSid=SID + "0", SmsMessageSid=SID + "0"), None),
    ("a MessageSid of another resource", inbound(MessageSid="CA" + SID[2:], SmsSid="CA" + SID[2:],
                                                 SmsMessageSid="CA" + SID[2:]), None),
    ("SmsSid differs", inbound(SmsSid=OTHER_SID), None),
    ("AccountSid not in Twilio's form", inbound(AccountSid="AC123"), None),
    ("another account", inbound(AccountSid="AC" + "b2" * 16), ACCOUNT),
    ("no AccountSid when ours is known", {k: v for k, v in inbound().items() if k != "AccountSid"}, ACCOUNT),
    ("From not a number", inbound(From="61412399002"), None),
    ("From a channel address", inbound(From="whatsapp:+61412399002"), None),
    ("NumMedia not digits", inbound(NumMedia="0To"), None),
    ("a city in lower case", inbound(ToCity="Sydney"), None),
    ("an OptOutType Twilio does not send", inbound(OptOutType="STOPALL"), None),
    ("a media URL elsewhere", inbound(MediaUrl0="https://evil.example.com/a.jpg"), None),
    ("an eleventh attachment", inbound(MediaUrl10=MEDIA), None),
    ("no MessageSid", {k: v for k, v in inbound().items() if k not in ("MessageSid", "SmsSid", "SmsMessageSid")}, None),
])
def test_anything_else_is_refused(why, form, account):
    with pytest.raises(rules.BadForm):
        check(form, account=account)


def test_a_receipt_in_anything_but_twilios_form_is_refused():
    for form in (receipt(ErrorCode="30003 "), receipt(MessageStatus="Delivered"), receipt(From="CoachAmyLong1"),
                 receipt(Body="STOP"), receipt(RawDlrDoneDate="yesterday")):
        with pytest.raises(rules.BadForm):
            check(form, rules.STATUS_FIELDS, rules.STATUS_REQUIRED)


def signed_string(form: dict[str, str]) -> str:
    """What Twilio's signature covers after the URL: each key and value, keys sorted."""
    return "".join(key + form[key] for key in sorted(form))


def readings(text: str, fields: dict) -> list[dict[str, str]]:
    """Every way to read `text` as sorted allowed keys, each followed by a value of its form."""
    keys = sorted(fields)
    starts = {}
    for key in keys:
        at = text.find(key)
        while at >= 0:
            starts.setdefault(at, []).append(key)
            at = text.find(key, at + 1)
    found = []

    def read(at: int, after: str, pairs: list) -> None:
        if at == len(text):
            found.append(dict(pairs))
            return
        for key in starts.get(at, ()):
            if key <= after:
                continue
            begin = at + len(key)
            ends = [end for end in sorted(starts) if end >= begin and any(k > key for k in starts[end])]
            for end in ends + [len(text)]:
                value = text[begin:end]
                if rules.valid_value(fields, key, value):
                    read(end, key, pairs + [(key, value)])

    read(0, "", [])
    return found


def valid_readings(form, fields, required, account=None) -> list[dict[str, str]]:
    valid = []
    for reading in readings(signed_string(form), fields):
        try:
            rules.check_form(reading, fields, required, account)
        except rules.BadForm:
            continue
        valid.append(reading)
    return valid


HOSTILE_BODIES = [
    "STOP", "START", "", "From", "STOPFrom+61400000001", "STARTFrom+61412399002MessageSid" + OTHER_SID,
    "xFromCityFROM", "Y" + "From" * 3, "STOP" + "".join(inbound()) + "NumMedia0", "START" + signed_string(inbound()),
    "hiMessageSid" + OTHER_SID + "NumMedia1To+61280000001", "ToCity", "OptOutTypeSTART",
]


@pytest.mark.parametrize("body", HOSTILE_BODIES)
def test_a_signed_reply_has_no_other_valid_reading(body):
    for form in (inbound(Body=body), {"MessageSid": SID, "From": "+61412399002", "To": "+61280000001",
                                      "Body": body, "NumMedia": "0"},
                 inbound(Body=body, NumMedia="1", MediaUrl0=MEDIA, MediaContentType0="image/png")):
        check(form)
        assert valid_readings(form, rules.INBOUND_FIELDS, rules.INBOUND_REQUIRED) == [form]


_PIECES = sorted(rules.INBOUND_FIELDS) + ["+61412399002", "+6128", "0", "2000", "SM", "0f" * 16, "STOP", "START",
                                          "AU", "received", "Y", " ", "x"]


@settings(max_examples=150, deadline=None)
@given(body=st.lists(st.sampled_from(_PIECES), max_size=8).map("".join),
       city=st.sampled_from(["", "SYDNEY", "FROM", "TO CITY"]), media=st.booleans())
def test_no_reply_body_gives_a_signed_reply_another_valid_reading(body, city, media):
    form = inbound(Body=body, ToCity=city, **({"NumMedia": "1", "MediaUrl0": MEDIA, "MediaContentType0": "audio/amr"}
                                             if media else {}))
    assert valid_readings(form, rules.INBOUND_FIELDS, rules.INBOUND_REQUIRED) == [form]


@pytest.mark.parametrize("sender", ["+61280000001", "", "MessageSid", "AMessageSid", "To", "SmsSid", "B", "12345"])
def test_a_signed_receipt_has_no_other_valid_reading(sender):
    for form in (receipt(From=sender), {"MessageSid": SID, "MessageStatus": "delivered", "From": sender},
                 receipt(From=sender, ErrorCode="", To="")):
        check(form, rules.STATUS_FIELDS, rules.STATUS_REQUIRED)
        assert valid_readings(form, rules.STATUS_FIELDS, rules.STATUS_REQUIRED) == [form]


def test_the_re_split_of_the_issue_is_a_valid_signature_but_not_a_valid_form():
    """MessageSid SM..32 hex NumMedia 0 re-read as MessageSid SM..32 hex + "NumMedia0": a new replay key."""
    original = {"MessageSid": SID, "From": "+61412399002", "To": "+61280000001", "Body": "START", "NumMedia": "0"}
    resplit = {"MessageSid": SID + "NumMedia0", "From": "+61412399002", "To": "+61280000001", "Body": "START"}
    assert signed_string(resplit) == signed_string(original)
    assert resplit in readings(signed_string(original), {**rules.INBOUND_FIELDS, "MessageSid": ".*"})
    with pytest.raises(rules.BadForm):
        check(resplit)


def test_the_argument_holds_for_the_tables():
    """What the comment in rules.py relies on, checked against the allow-lists themselves."""
    for fields in (rules.INBOUND_FIELDS, rules.STATUS_FIELDS):
        assert all(key[0].isupper() and key[1].islower() for key in fields)
        for key in fields:
            for longer in fields:
                if longer != key and longer.startswith(key):
                    assert key in ("From", "To") and longer[len(key)].isupper() and longer[len(key) + 1].islower()
    inbound_keys, status_keys = sorted(rules.INBOUND_FIELDS), sorted(rules.STATUS_FIELDS)
    assert inbound_keys[inbound_keys.index("Body") + 1] == "From" and "From" in rules.INBOUND_REQUIRED
    assert status_keys[status_keys.index("From") + 1] == "MessageSid" and "MessageSid" in rules.STATUS_REQUIRED
    assert [k for k, pattern in rules.INBOUND_FIELDS.items() if pattern is rules.FREE_TEXT] == ["Body"]
    assert not rules.valid_value(rules.INBOUND_FIELDS, "From", "Fr")
    assert not rules.valid_value(rules.STATUS_FIELDS, "From", "x" * 12)
