from __future__ import annotations

import pytest

from publisher.state import State
from publisher.newsletter.subscribers import InvalidAddress, clean_name, import_csv, normalize_address


@pytest.mark.parametrize("good, expected", [
    ("ann@example.org", "ann@example.org"),
    ("  Ann.Lee+news@Example.ORG ", "Ann.Lee+news@example.org"),
    ("x@bücher.de", "x@bücher.de"),
])
def test_valid_addresses(good, expected):
    assert normalize_address(good) == expected


@pytest.mark.parametrize("bad, reason", [
    ("", "empty"),
    ("no-at-sign", "exactly one '@'"),
    ("a@b@c.org", "exactly one '@'"),
    ("a b@c.org", "spaces or control"),
    ("a@c.org\r\nBcc: x@y.org", "spaces or control"),
    ("a@localhost", "invalid domain"),
    ("a@-bad-.org", "invalid domain"),
    (".a@c.org", "before '@'"),
    ("a..b@c.org", "before '@'"),
    ("<a@c.org>", "before '@'"),
    ("a@" + "x" * 250 + ".org", "longer than 254"),
])
def test_invalid_addresses_say_why(bad, reason):
    with pytest.raises(InvalidAddress, match=reason.replace("(", r"\(")):
        normalize_address(bad)


def test_clean_name():
    assert clean_name("Ann\r\nBcc: evil\x00") == "Ann Bcc: evil"
    assert clean_name(None) == ""


def test_import_reports_each_rejected_row_and_is_safe_to_rerun(tmp_path, db_url):
    csv_path = tmp_path / "list.csv"
    csv_path.write_bytes(
        "\ufeffName,EMAIL,extra\r\n"
        "Ann,ann@example.org,1\r\n"
        "Bob,not-an-address,2\r\n"
        "\r\n"
        "\"Multi\nline\",carl@example.org,3\r\n"
        "Dup,ANN@example.org,4\r\n"
        "Short\r\n"
        "Émile 🎉,emile@example.org,5\r\n".encode("utf-8")
    )
    state = State(db_url)
    report = import_csv(csv_path, state)
    assert report.added == ["ann@example.org", "carl@example.org", "emile@example.org"]
    assert report.rejected == [
        "line 3: 'not-an-address': expected exactly one '@'",
        "line 7: ANN@example.org: duplicate of line 2",
        "line 8: no value in the 'EMAIL' column",  # the header as the file writes it
    ]
    assert {s.email: s.name for s in state.list_subscribers()}["carl@example.org"] == "Multi line"
    again = import_csv(csv_path, state)
    assert again.added == [] and len(again.already) == 3
    assert state.count_subscribers() == 3


def test_import_needs_an_email_header(tmp_path, db_url):
    from publisher.errors import ContentError

    csv_path = tmp_path / "bad.csv"
    csv_path.write_text("name,mail\nA,a@x.org\n")
    with pytest.raises(ContentError, match="line 1: header has no 'email' column"):
        import_csv(csv_path, State(db_url))


def test_import_semicolon_csv(tmp_path, db_url):
    csv_path = tmp_path / "semi.csv"
    csv_path.write_text("email;name\na@x.org;A\nb@x.org;B\n")
    report = import_csv(csv_path, State(db_url))
    assert report.added == ["a@x.org", "b@x.org"] and report.rejected == []


# --- the exports of the tools people leave (fixtures written in each tool's documented format) ---

MAILCHIMP_SUBSCRIBED = (
    '"Email Address","First Name","Last Name",Address,"Phone Number",MEMBER_RATING,OPTIN_TIME,'
    'OPTIN_IP,CONFIRM_TIME,CONFIRM_IP,LATITUDE,LONGITUDE,GMTOFF,DSTOFF,TIMEZONE,CC,REGION,'
    'LAST_CHANGED,LEID,EUID,NOTES,TAGS\r\n'
    'ann@example.org,Ann,Lee,,,2,"2023-01-02 10:00:00",,"2023-01-02 10:01:00",,,,,,,,,'
    '"2023-01-02 10:01:00",1,abc,,"""blog"""\r\n'
    'bob@example.org,Bob,,,,2,,,,,,,,,,,,,2,def,,\r\n'
)
MAILCHIMP_UNSUBSCRIBED = (
    '"Email Address","First Name","Last Name",MEMBER_RATING,OPTIN_TIME,UNSUB_TIME,'
    'UNSUB_CAMPAIGN_TITLE,UNSUB_CAMPAIGN_ID,UNSUB_REASON,LEID,EUID\r\n'
    'gone@example.org,Gone,Away,2,"2022-01-01 00:00:00","2023-05-05 12:00:00",Weekly,1a2b,'
    '"NORMAL",3,ghi\r\n'
)
MAILCHIMP_CLEANED = (
    '"Email Address","First Name","Last Name",MEMBER_RATING,OPTIN_TIME,CLEAN_TIME,'
    'CLEAN_CAMPAIGN_TITLE,CLEAN_CAMPAIGN_ID,LEID,EUID\r\n'
    'bounced@example.org,Bo,Unce,1,"2022-01-01 00:00:00","2023-05-05 12:00:00",Weekly,1a2b,4,jkl\r\n'
)
SUBSTACK = (
    "email,active_subscription,expiry,plan,email_disabled,created_at,first_payment_at\n"
    "reader@example.org,false,,free,false,2023-03-01T10:00:00.000Z,\n"
    "muted@example.org,false,,free,true,2023-03-02T10:00:00.000Z,\n"
)
BUTTONDOWN = (
    "id,email,notes,metadata,tags,referrer_url,creation_date,secondary_id,subscriber_type,source\n"
    "1c2d,fan@example.org,,{},[],,2023-01-01T00:00:00Z,1,regular,import\n"
    "3e4f,left@example.org,,{},[],,2023-01-01T00:00:00Z,2,unsubscribed,import\n"
    "5a6b,never@example.org,,{},[],,2023-01-01T00:00:00Z,3,unactivated,form\n"
)
KIT = (
    "first_name,email_address,state,created_at,tags\n"
    "Kim,kim@example.org,active,2023-01-01 00:00:00 UTC,\n"
    "Cam,cam@example.org,cancelled,2023-01-01 00:00:00 UTC,\n"
)
GHOST = (
    "id,email,name,note,subscribed_to_emails,complimentary_plan,stripe_customer_id,created_at,"
    "deleted_at,labels,tiers\n"
    "64a1,gina@example.org,Gina Ghost,,true,false,,2023-01-01T00:00:00.000Z,,\"Friends\",\n"
    "64a2,quiet@example.org,Quiet One,,false,false,,2023-01-01T00:00:00.000Z,,,\n"
)
LISTMONK = (
    "uuid,email,name,attributes,status,created_at,updated_at\n"
    '9b1e,lou@example.org,Lou Monk,"{""city"": ""Bengaluru""}",enabled,2023-01-01 00:00:00,2023-01-01 00:00:00\n'
    "9b1f,spam@example.org,Block Ed,{},blocklisted,2023-01-01 00:00:00,2023-01-01 00:00:00\n"
)


@pytest.mark.parametrize("text, added, names, rejected", [
    (MAILCHIMP_SUBSCRIBED, ["ann@example.org", "bob@example.org"], {"ann@example.org": "Ann Lee", "bob@example.org": "Bob"}, []),
    (MAILCHIMP_UNSUBSCRIBED, [], {}, ["line 2: gone@example.org: unsubscribed in the export (UNSUB_TIME)"]),
    (MAILCHIMP_CLEANED, [], {}, ["line 2: bounced@example.org: cleaned (bounced) in the export (CLEAN_TIME)"]),
    (SUBSTACK, ["reader@example.org"], {"reader@example.org": ""},
     ["line 3: muted@example.org: email disabled in the export (email_disabled)"]),
    (BUTTONDOWN, ["fan@example.org"], {"fan@example.org": ""},
     ["line 3: left@example.org: subscriber_type 'unsubscribed' in the export (not an active subscriber)",
      "line 4: never@example.org: subscriber_type 'unactivated' in the export (not an active subscriber)"]),
    (KIT, ["kim@example.org"], {"kim@example.org": "Kim"},
     ["line 3: cam@example.org: state 'cancelled' in the export (not an active subscriber)"]),
    (GHOST, ["gina@example.org"], {"gina@example.org": "Gina Ghost"},
     ["line 3: quiet@example.org: not subscribed to emails in the export (subscribed_to_emails)"]),
    (LISTMONK, ["lou@example.org"], {"lou@example.org": "Lou Monk"},
     ["line 3: spam@example.org: status 'blocklisted' in the export (not an active subscriber)"]),
], ids=["mailchimp", "mailchimp-unsubscribed", "mailchimp-cleaned", "substack", "buttondown", "kit",
        "ghost", "listmonk"])
def test_import_reads_other_tools_exports_and_never_adds_who_left(tmp_path, db_url, text, added, names, rejected):
    csv_path = tmp_path / "export.csv"
    csv_path.write_bytes(text.encode("utf-8"))
    state = State(db_url)
    report = import_csv(csv_path, state)
    assert report.added == added
    assert report.rejected == rejected
    assert {s.email: s.name for s in state.list_subscribers()} == names


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-le-bom", "utf-16-be-bom", "cp1252"])
def test_import_reads_the_encodings_spreadsheets_write(tmp_path, db_url, encoding):
    text = "Email Address\tFirst Name\tLast Name\r\nzoe@example.org\tZoë\tMüller-Ŀ\r\n"
    if encoding == "cp1252":
        text = text.replace("Ŀ", "")  # not in cp1252
    data = {"utf-16-le-bom": b"\xff\xfe" + text.encode("utf-16-le"),
            "utf-16-be-bom": b"\xfe\xff" + text.encode("utf-16-be")}.get(encoding) or text.encode(encoding)
    csv_path = tmp_path / "excel.csv"
    csv_path.write_bytes(data)
    state = State(db_url)
    report = import_csv(csv_path, state)
    assert report.added == ["zoe@example.org"] and report.rejected == []
    assert state.list_subscribers()[0].name == text.splitlines()[1].split("\t", 1)[1].replace("\t", " ")


def test_import_refuses_an_undecodable_file_naming_it(tmp_path, db_url):
    from publisher.errors import ContentError

    csv_path = tmp_path / "bin.csv"
    csv_path.write_bytes(b"email\n\x81\x8d\x8f@example.org\n")  # invalid in UTF-8 and in cp1252
    with pytest.raises(ContentError, match=r"bin.csv: neither UTF-8, UTF-16 nor cp1252 \(invalid UTF-8 byte at offset 6\)"):
        import_csv(csv_path, State(db_url))

