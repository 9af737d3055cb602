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
        "line 8: no value in the 'email' column",
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
