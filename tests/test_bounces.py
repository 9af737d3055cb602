"""Bounces and complaints after acceptance (newsletter/bounces.py, bounce_mailbox.py): real
report files in a Maildir, an mbox and a real Dovecot IMAP server, digests sent to a real SMTP
server, and the `publisher` commands that show and reverse suppressions."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from email import message_from_bytes

import pytest
from bounce_helpers import SENDER, maildir_messages, many_recipients_dsn, sample, verp_to, write_maildir, write_mbox
from click.testing import CliRunner
from imap_helpers import PASSWORD, DovecotServer

from publisher import pipeline
from publisher.cli import main
from publisher.newsletter.bounces import classify, parse_verp_token
from publisher.state import State

WEEK_AGO = datetime.now(timezone.utc) - timedelta(days=7)
VERP = "bounces+{token}@blog.test.example"  # reports suppress only with their copy's signed token


def cli(config, *args: str, env: dict | None = None):
    result = CliRunner().invoke(main, ["--config", str(config.path), *args], env=env)
    return result


@pytest.fixture
def mailing(site, server):
    """A site whose digests go to the real SMTP server, with subscribers; returns a
    function that writes config keys (newsletter=...), and `send(n)` sends digest n."""

    class Mailing:
        def setup(self, subscribers: list[str], **newsletter):
            site.write_config(smtp={"host": "127.0.0.1", "port": server.port, "retry_base_delay": 0},
                              newsletter=newsletter)
            site.post("old.md", "title: Old\npubDate: 2024-01-01")
            self.config = site.config()
            pipeline.run_once(self.config, WEEK_AGO)  # the baseline: nothing old is mailed
            with_state(self.config, lambda s: s.add_subscribers([(a, "") for a in subscribers]))
            return self.config

        def send(self, n: int, now: datetime | None = None):
            site.post(f"post{n}.md", f"title: Post {n}\npubDate: {(WEEK_AGO + timedelta(hours=n)).isoformat()}")
            report = pipeline.send_now(self.config, now or WEEK_AGO + timedelta(hours=n, minutes=30))
            assert not report.problems, report.problems
            return report

        def reload(self, **newsletter):
            site.write_config(smtp={"host": "127.0.0.1", "port": server.port, "retry_base_delay": 0},
                              newsletter=newsletter)
            self.config = site.config()
            return self.config

    return Mailing()


def with_state(config, f):
    state = State(config.database_url)
    try:
        return f(state)
    finally:
        state.close()


def statuses(config) -> dict[str, str]:
    return {s.email: s.status for s in with_state(config, lambda st: st.list_subscribers())}


def token_of(config, address: str) -> str:
    return with_state(config, lambda st: st.subscriber_by_email(address).token)


# --- what a message is ------------------------------------------------------------------------

def test_each_sample_is_classified_with_its_address_and_status(site):
    config = site.config()
    expected = {
        "postfix-hard.eml": ("dsn", [("hard", "5.1.1")]),
        "postfix-soft.eml": ("dsn", [("soft", "4.2.2")]),
        "postfix-plain.eml": ("dsn", [("hard", "5.2.1")]),
        "qmail.eml": ("dsn", [("hard", "5.1.1")]),
        "exim.eml": ("dsn", [("hard", "5.1.1")]),
        "arf-abuse.eml": ("arf", [("complaint", "")]),
        "arf-not-spam.eml": ("not-spam", []),
        "postfix-delayed.eml": ("delay", []),
        "autoreply.eml": ("autoreply", []),
        "personal.eml": ("", []),
    }
    for name, (what, events) in expected.items():
        found = classify(sample(name, rcpt="Reader@Example.net"), config)
        assert found.what == what, name
        assert [(e.kind, e.status) for e in found.events] == events, name
        assert all(e.recipient == "reader@example.net" for e in found.events), name


# --- a Maildir, end to end through `publisher bounces` ---------------------------------------------

def test_maildir_bounces_suppress_and_only_recognised_messages_are_moved(mailing, tmp_path):
    people = ["hard@example.net", "soft@example.net", "abuse@example.net", "q@example.net",
              "exim@example.net", "plain@example.net", "ok@example.net"]
    config = mailing.setup(people, bounce_address=VERP, bounce_mailbox="maildir:bounces")
    mailing.send(1)
    box = tmp_path / "site" / "bounces"
    handled = [
        sample("postfix-hard.eml", rcpt="hard@example.net", to=verp_to(config, "hard@example.net")),
        sample("postfix-soft.eml", rcpt="soft@example.net", to=verp_to(config, "soft@example.net")),
        sample("arf-abuse.eml", rcpt="abuse@example.net", to=verp_to(config, "abuse@example.net")),
        sample("qmail.eml", rcpt="q@example.net", to=verp_to(config, "q@example.net")),
        sample("exim.eml", rcpt="exim@example.net", to=verp_to(config, "exim@example.net")),
        sample("postfix-plain.eml", rcpt="plain@example.net", to=verp_to(config, "plain@example.net")),
        sample("postfix-delayed.eml", rcpt="ok@example.net"),
        sample("autoreply.eml", rcpt="ok@example.net"),
        sample("arf-not-spam.eml", rcpt="ok@example.net"),
    ]
    left = [sample("personal.eml", rcpt="ok@example.net"),
            sample("postfix-hard.eml", rcpt="stranger@example.net", unique="stranger")]
    write_maildir(box, handled + left)

    result = cli(config, "bounces")
    assert result.exit_code == 0, result.output
    assert ("bounces: 9 messages handled: 4 hard, 1 soft, 1 complaints, 3 ignored; "
            "5 addresses suppressed; 2 left in the mailbox (not recognised)") in result.stdout
    assert "stranger@example.net: matches no subscriber" in result.stderr
    assert statuses(config) == {
        "hard@example.net": "bounced", "soft@example.net": "active", "abuse@example.net": "unsubscribed",
        "q@example.net": "bounced", "exim@example.net": "bounced", "plain@example.net": "bounced",
        "ok@example.net": "active"}
    assert sorted(maildir_messages(box)) == sorted(left)
    assert sorted(maildir_messages(box, "Processed")) == sorted(handled)

    again = cli(config, "bounces")  # the moved ones are gone; the rest is not recorded twice
    assert "bounces: 0 messages handled" in again.stdout and "2 left in the mailbox" in again.stdout

    listed = cli(config, "subscribers", "list", "--status", "bounced")
    lines = dict(line.split("\t", 1) for line in listed.stdout.splitlines())
    assert lines["hard@example.net"].startswith("bounced\t\thard (mailbox) 5.1.1 550 5.1.1 <hard@example.net>: Recipient address rejected")
    assert lines["q@example.net"].startswith("bounced\t\thard (mailbox) 5.1.1 Sorry, no mailbox here by that name.")
    assert lines["hard@example.net"].endswith("Z") and len(lines) == 4
    unsub = cli(config, "subscribers", "list", "--status", "unsubscribed").stdout
    assert "abuse@example.net\tunsubscribed\t\tcomplaint (mailbox)  Feedback-Type: abuse" .replace("  ", " ") in unsub


@pytest.mark.parametrize("processed", ["delete", "move"])
def test_mbox_removes_handled_messages_and_keeps_the_rest(mailing, tmp_path, processed):
    config = mailing.setup(["gone@example.net", "fine@example.net"], bounce_address=VERP,
                           bounce_mailbox="mbox:bounces.mbox",
                           bounce_processed=processed, bounce_folder="Done")
    mailing.send(1)
    path = tmp_path / "site" / "bounces.mbox"
    personal = sample("personal.eml", rcpt="fine@example.net")
    write_mbox(path, [sample("exim.eml", rcpt="gone@example.net", to=verp_to(config, "gone@example.net")), personal])
    result = cli(config, "bounces")
    assert result.exit_code == 0, result.output
    import mailbox

    remaining = [m for m in mailbox.mbox(path)]
    assert len(remaining) == 1 and remaining[0]["Message-ID"] == "<personal-1@example.net>"
    moved = tmp_path / "site" / "bounces.mbox.Done"
    if processed == "delete":
        assert not moved.exists()
    else:
        assert [m["Message-Id"] for m in mailbox.mbox(moved)] == ["<E1tFj2Q-0003Ab-7c@exim.example.net>"]
    assert statuses(config) == {"gone@example.net": "bounced", "fine@example.net": "active"}


def test_a_missing_mailbox_is_one_clear_error(mailing):
    config = mailing.setup(["a@example.net"], bounce_mailbox="maildir:nowhere")
    result = cli(config, "bounces")
    assert result.exit_code == 1
    assert result.stderr.startswith("publisher: error: newsletter.bounce_mailbox maildir:")
    assert "nowhere: not a Maildir (no cur/ and new/)" in result.stderr


# --- a real IMAP server -------------------------------------------------------------------------

def test_imap_mailbox_on_dovecot(mailing, tmp_path):
    with DovecotServer(tmp_path) as imap:
        config = mailing.setup(["dead@example.net", "alive@example.net", "spam@example.net"],
                               bounce_address=VERP, bounce_mailbox=imap.url("INBOX"))
        mailing.send(1)
        handled = [sample("postfix-hard.eml", rcpt="dead@example.net", to=verp_to(config, "dead@example.net")),
                   sample("arf-abuse.eml", rcpt="spam@example.net", to=verp_to(config, "spam@example.net")),
                   sample("autoreply.eml", rcpt="alive@example.net")]
        personal = sample("personal.eml", rcpt="alive@example.net")
        for data in handled + [personal]:
            imap.deliver(data)

        no_password = cli(config, "bounces", env={"PUBLISHER_BOUNCE_PASSWORD": ""})
        assert no_password.exit_code == 1 and "set PUBLISHER_BOUNCE_PASSWORD" in no_password.stderr
        wrong = cli(config, "bounces", env={"PUBLISHER_BOUNCE_PASSWORD": "wrong"})
        assert wrong.exit_code == 1 and "AUTHENTICATIONFAILED" in wrong.stderr
        assert statuses(config)["dead@example.net"] == "active" and len(imap.folder("INBOX")) == 4

        result = cli(config, "bounces", env={"PUBLISHER_BOUNCE_PASSWORD": PASSWORD})
        assert result.exit_code == 0, result.output
        assert "3 messages handled: 1 hard, 0 soft, 1 complaints, 1 ignored" in result.stdout
        assert statuses(config) == {"dead@example.net": "bounced", "alive@example.net": "active",
                                    "spam@example.net": "unsubscribed"}
        inbox = imap.folder("INBOX")
        assert len(inbox) == 1 and b"Message-ID: <personal-1@example.net>" in inbox[0]
        moved = imap.folder("Processed")
        # Header names are case-insensitive: one lookup finds Message-ID, Message-Id, message-id.
        assert sorted(message_from_bytes(m)["Message-ID"] for m in moved) == sorted(
            message_from_bytes(m)["Message-ID"] for m in handled)
        assert None not in (message_from_bytes(m)["Message-ID"] for m in handled)


@pytest.mark.parametrize("imaps", [True, False], ids=["imaps", "imap-starttls"])
def test_imap_over_tls_verifies_the_server(mailing, tmp_path, imaps):
    from smtp_helpers import make_cert

    cert = make_cert(tmp_path / "cert")
    with DovecotServer(tmp_path, cert=cert) as imap:
        config = mailing.setup(["dead@example.net"], bounce_address=VERP, bounce_mailbox=imap.url(imaps=imaps))
        mailing.send(1)
        imap.deliver(sample("exim.eml", rcpt="dead@example.net", to=verp_to(config, "dead@example.net")))
        untrusted = cli(config, "bounces", env={"PUBLISHER_BOUNCE_PASSWORD": PASSWORD, "SSL_CERT_FILE": os.devnull})
        assert untrusted.exit_code == 1 and "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr
        assert statuses(config) == {"dead@example.net": "active"}
        # The self-signed certificate, trusted the way a private CA is: SSL_CERT_FILE.
        trusted = cli(config, "bounces", env={"PUBLISHER_BOUNCE_PASSWORD": PASSWORD, "SSL_CERT_FILE": str(cert.cert)})
        assert trusted.exit_code == 0, trusted.output
        assert statuses(config) == {"dead@example.net": "bounced"}
        assert imap.folder("INBOX") == [] and len(imap.folder("Processed")) == 1


def test_publisher_run_reads_bounces_before_it_mails(mailing, server, tmp_path):
    config = mailing.setup(["dead@example.net", "alive@example.net"], bounce_address=VERP,
                           bounce_mailbox="maildir:bounces", schedule="* * * * *")
    mailing.send(1)
    write_maildir(tmp_path / "site" / "bounces", [sample("postfix-hard.eml", rcpt="dead@example.net",
                                                         to=verp_to(config, "dead@example.net"))])
    before = len(server.received)
    (tmp_path / "site" / "content" / "post2.md").write_text(
        f"---\ntitle: Post 2\npubDate: {(WEEK_AGO + timedelta(days=1)).isoformat()}\n---\nHi.\n")
    report = pipeline.run_once(config)
    assert report.lines[0].startswith("bounces: 1 messages handled: 1 hard"), report.lines
    assert [m.rcpt for m in server.received[before:]] == ["alive@example.net"]


# --- VERP -------------------------------------------------------------------------------------------

def test_verp_names_digest_and_subscriber_even_when_the_report_is_mangled(mailing, server, tmp_path):
    config = mailing.setup(["a@example.net", "b@example.net"], bounce_address="bounces+{token}@blog.test.example",
                           bounce_mailbox="maildir:bounces")
    mailing.send(1)
    senders = {m.rcpt: m.mail_from for m in server.received}
    assert set(senders) == {"a@example.net", "b@example.net"}
    secret = with_state(config, lambda s: s.bounce_secret())
    ids = {s.email: s.id for s in with_state(config, lambda st: st.list_subscribers())}
    for address, mail_from in senders.items():
        local = mail_from.split("@")[0]
        assert mail_from.endswith("@blog.test.example") and local.startswith("bounces+")
        assert parse_verp_token(secret, local[len("bounces+"):]) == (1, ids[address])
    # The report names an internal forwarding address, not the subscriber: VERP still finds b.
    mangled = sample("postfix-hard.eml", rcpt="b.forward@internal.example", to=senders["b@example.net"])
    forged = sample("postfix-hard.eml", rcpt="x@internal.example", unique="forged",
                    to=senders["a@example.net"].replace(".", ".9", 1))  # another digest, bad MAC
    write_maildir(tmp_path / "site" / "bounces", [mangled, forged])
    result = cli(config, "bounces")
    assert "1 messages handled: 1 hard" in result.stdout and "1 left in the mailbox" in result.stdout
    assert statuses(config) == {"a@example.net": "active", "b@example.net": "bounced"}

    check = cli(config, "check")
    assert ("VERP on: each copy's envelope sender is bounces+TOKEN@blog.test.example. blog.test.example "
            "needs an MX record") in check.stdout


def test_soft_bounces_suppress_only_in_a_row_without_a_delivery_between(mailing, tmp_path):
    config = mailing.setup(["steady@example.net", "flaky@example.net", "fine@example.net"],
                           bounce_address="bounces+{token}@blog.test.example",
                           bounce_mailbox="maildir:bounces", soft_bounce_limit=2)
    secret = None
    box = tmp_path / "site" / "bounces"

    def soft(address: str, digest: int, n: int):
        nonlocal secret
        from publisher.newsletter.bounces import verp_token

        secret = secret or with_state(config, lambda s: s.bounce_secret())
        sid = with_state(config, lambda s: s.subscriber_by_email(address).id)
        to = f"bounces+{verp_token(secret, digest, sid)}@blog.test.example"
        return sample("postfix-soft.eml", rcpt=address, to=to, unique=f"{address}.{digest}.{n}")

    mailing.send(1)
    write_maildir(box, [soft("steady@example.net", 1, 1), soft("flaky@example.net", 1, 1),
                        soft("flaky@example.net", 1, 2)])  # two reports about one digest count once
    cli(config, "bounces")
    assert set(statuses(config).values()) == {"active"}
    mailing.send(2)  # flaky's copy of digest 2 is delivered: no bounce for it
    mailing.send(3)
    write_maildir(box, [soft("steady@example.net", 2, 1), soft("flaky@example.net", 3, 1)])
    result = cli(config, "bounces")
    assert "suppressed steady@example.net" in result.stdout
    assert statuses(config) == {"steady@example.net": "bounced", "flaky@example.net": "active",
                                "fine@example.net": "active"}


# --- reversible, and never silently undone ------------------------------------------------------

def test_send_and_report_count_alike_and_a_high_bounce_rate_is_warned(mailing, server):
    config = mailing.setup(["gone@example.net", "a@example.net", "b@example.net"])
    server.add_fault("rcpt", "550 5.1.1 <gone@example.net>: user unknown", recipient="gone@example.net")
    sent = mailing.send(1)
    assert any(line.endswith("2 sent, 0 retried, 1 bounced") for line in sent.lines), sent.lines
    report = cli(config, "report")
    assert report.exit_code == 0
    assert "2 sent, 1 bounced (33.33%), 0 complaints (0.00%)" in report.stdout  # as `send` counted
    assert ("publisher: warning: digest #1: bounce rate 33.33% is over 2% (mail providers start filtering "
            "senders with more; clean the list: `publisher subscribers list --status bounced`)") in report.stderr


def test_reactivate_import_and_report(mailing, tmp_path):
    config = mailing.setup(["dead@example.net", "spam@example.net", "left@example.net"]
                           + [f"r{i}@example.net" for i in range(7)], bounce_address=VERP,
                           bounce_mailbox="maildir:bounces")
    mailing.send(1)
    write_maildir(tmp_path / "site" / "bounces", [
        sample("postfix-hard.eml", rcpt="dead@example.net", to=verp_to(config, "dead@example.net")),
        sample("arf-abuse.eml", rcpt="spam@example.net", to=verp_to(config, "spam@example.net"))])
    cli(config, "bounces")
    with_state(config, lambda s: s.unsubscribe_by_token(token_of(config, "left@example.net"),
                                                        now=datetime.now(timezone.utc)))

    csv = tmp_path / "list.csv"
    csv.write_text("email\nDead@example.net\nspam@example.net\nleft@example.net\nnew@example.net\n")
    imported = cli(config, "subscribers", "import", str(csv))
    assert imported.exit_code == 0
    assert "1 added, 3 already on the list, 0 rejected, 2 suppressed (not re-subscribed)" in imported.stdout
    assert f"{csv}: Dead@example.net: suppressed (bounced or complained), not re-subscribed" in imported.stderr
    assert f"{csv}: spam@example.net: suppressed" in imported.stderr and "left@example.net" not in imported.stderr
    assert statuses(config)["dead@example.net"] == "bounced"
    added = cli(config, "subscribers", "add", "DEAD@example.net")
    assert added.exit_code == 0 and "DEAD@example.net is on the list but suppressed (bounced or complained)" in added.stdout
    assert statuses(config)["dead@example.net"] == "bounced"

    report = cli(config, "report")
    assert "#1 " in report.stdout and "10 sent, 1 bounced (10.00%), 1 complaints (10.00%)" in report.stdout
    assert "publisher: warning: digest #1: complaint rate 10.00% is over 0.1%" in report.stderr

    refused = cli(config, "subscribers", "reactivate", "left@example.net", "--reason", "asked")
    assert refused.exit_code == 1 and "is unsubscribed, not suppressed by a bounce or complaint" in refused.stderr
    done = cli(config, "subscribers", "reactivate", "dead@example.net", "--reason", "mailbox fixed, per phone call")
    assert done.exit_code == 0 and "reactivated dead@example.net (mailbox fixed, per phone call)" in done.stdout
    assert statuses(config)["dead@example.net"] == "active"
    assert "dead@example.net" not in cli(config, "subscribers", "list", "--status", "bounced").stdout
    missing_reason = cli(config, "subscribers", "reactivate", "spam@example.net")
    assert missing_reason.exit_code == 2 and "--reason" in missing_reason.output


def test_bounces_command_in_a_real_process(mailing, tmp_path):
    config = mailing.setup(["dead@example.net"], bounce_address=VERP, bounce_mailbox="maildir:bounces")
    mailing.send(1)
    write_maildir(tmp_path / "site" / "bounces", [sample("qmail.eml", rcpt="dead@example.net",
                                                         to=verp_to(config, "dead@example.net"))])
    done = subprocess.run([sys.executable, "-m", "publisher.cli", "--config", str(config.path), "bounces"],
                          capture_output=True, text=True, timeout=120, env={**os.environ})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "suppressed dead@example.net",
        "bounces: 1 messages handled: 1 hard, 0 soft, 0 complaints, 0 ignored; 1 addresses suppressed"]
    assert statuses(config) == {"dead@example.net": "bounced"}


def test_status_codes_map_to_hard_and_soft():
    from publisher.newsletter.bounces import kind_of

    assert [kind_of(status, detail) for status, detail in [
        ("5.1.1", ""), ("5.1.10", "null MX"), ("5.2.1", "disabled"), ("5.2.2", "mailbox full"),
        ("5.7.1", "message refused as spam"), ("5.0.0", "550 User unknown"), ("5.0.0", "550 rejected"),
        ("4.2.2", "user unknown, over quota"), ("4.4.1", ""), ("2.0.0", "delivered"), ("", "550 no such user here"),
    ]] == ["hard", "hard", "hard", "soft", "soft", "hard", "soft", "soft", "soft", None, "hard"]


def test_a_report_about_several_recipients_counts_once_for_its_tokens_subscriber(mailing, tmp_path):
    config = mailing.setup(["one@example.net", "two@example.net", "three@example.net"],
                           bounce_address=VERP, bounce_mailbox="maildir:bounces")
    mailing.send(1)
    report = sample("postfix-hard.eml", rcpt="one@example.net", to=verp_to(config, "one@example.net")).replace(
        b"Final-Recipient: rfc822; one@example.net",
        b"Final-Recipient: rfc822; two@example.net\nAction: delayed\nStatus: 4.4.1\n\n"
        b"Final-Recipient: rfc822; three@example.net\nAction: failed\nStatus: 5.1.1\n\n"
        b"Final-Recipient: rfc822; one@example.net")
    write_maildir(tmp_path / "site" / "bounces", [report])
    result = cli(config, "bounces")
    assert "1 messages handled: 1 hard, 0 soft" in result.stdout
    assert statuses(config) == {"one@example.net": "bounced", "two@example.net": "active",
                                "three@example.net": "active"}


def test_a_redacted_complaint_counts_for_the_subscriber_its_verp_token_names(mailing, tmp_path):
    config = mailing.setup(["reader@example.net", "other@example.net"], bounce_address=VERP,
                           bounce_mailbox="maildir:bounces")
    mailing.send(1)
    report = sample("arf-abuse.eml", rcpt="redacted@hotmail.example", to=verp_to(config, "reader@example.net"))
    write_maildir(tmp_path / "site" / "bounces", [report])
    assert "1 complaints" in cli(config, "bounces").stdout
    assert statuses(config) == {"reader@example.net": "unsubscribed", "other@example.net": "active"}


def test_mangled_reports_never_crash_the_reader(site):
    """Truncated, spliced and byte-flipped reports: classify answers for each (a report it
    cannot read is "not recognised" and stays in the mailbox), never raises."""
    import random

    from publisher.newsletter.bounces import Classified

    config = site.config()
    rng = random.Random(3464)
    samples = [sample(name, rcpt="r@example.net") for name in
               ("postfix-hard.eml", "arf-abuse.eml", "qmail.eml", "exim.eml", "postfix-plain.eml")]
    for _ in range(400):
        data = bytearray(rng.choice(samples))
        for _flip in range(rng.randint(0, 20)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        cut = rng.randint(0, len(data))
        mangled = bytes(data[:cut]) + (rng.choice(samples)[rng.randint(0, 500):] if rng.random() < 0.3 else b"")
        assert isinstance(classify(mangled, config), Classified)
    odd = sample("postfix-hard.eml", rcpt="r@example.net").replace(b"charset=utf-8", b"charset=x-no-such-charset")
    assert [e.kind for e in classify(odd, config).events] == ["hard"]


# --- forged reports: only a signed VERP token suppresses, and only its own subscriber ---------


def test_reports_without_a_valid_verp_token_suppress_nobody_and_are_kept_for_a_person(mailing, tmp_path):
    people = ["plain@example.net", "badmac@example.net", "daemon@example.net", "redacted@example.net",
              "ok@example.net"]
    config = mailing.setup(people, bounce_address=VERP, bounce_mailbox="maildir:bounces")
    mailing.send(1)
    genuine = verp_to(config, "badmac@example.net")
    local, domain = genuine.split("@")
    forged_mac = local[:-3] + ("aaa" if not local.endswith("aaa") else "bbb") + "@" + domain
    reports = [
        sample("postfix-hard.eml", rcpt="plain@example.net"),  # to the From address: no token at all
        sample("postfix-hard.eml", rcpt="badmac@example.net", to=forged_mac, unique="badmac"),
        sample("postfix-plain.eml", rcpt="daemon@example.net"),  # a plain notice "from MAILER-DAEMON"
        # a complaint whose returned copy carries a subscriber's unsubscribe link, but no VERP token
        sample("arf-abuse.eml", rcpt="someone@hotmail.example", token=token_of(config, "redacted@example.net")),
    ]
    box = tmp_path / "site" / "bounces"
    write_maildir(box, reports)

    result = cli(config, "bounces")
    assert result.exit_code == 0, result.output
    assert ("bounces: 0 messages handled: 0 hard, 0 soft, 0 complaints, 0 ignored; 0 addresses suppressed; "
            "4 left in the mailbox (0 not recognised, 4 not acted on: no valid VERP token, so a person must "
            "check them; `publisher report` lists them)") in result.stdout
    assert set(statuses(config).values()) == {"active"}
    assert sorted(maildir_messages(box)) == sorted(reports)  # nothing is lost: the person reads them there
    no_token = "not acted on: no VERP token: it did not come back to a bounces+TOKEN address"
    assert f"hard bounce for plain@example.net (on the list); {no_token}" in result.stderr
    assert "hard bounce for badmac@example.net (on the list); not acted on: the VERP token" in result.stderr
    assert "is not valid (forged, or from another list)" in result.stderr
    assert f"hard bounce for daemon@example.net (on the list); {no_token}" in result.stderr
    assert (f"complaint for someone@hotmail.example; its returned copy's unsubscribe link names "
            f"redacted@example.net; {no_token}") in result.stderr

    again = cli(config, "bounces")  # read again: kept once each
    assert set(statuses(config).values()) == {"active"}
    report = cli(config, "report")
    kept = [line for line in report.stderr.splitlines() if "needs a person" in line]
    assert len(kept) == 4, report.stderr
    assert any(f"needs a person: hard bounce for plain@example.net (on the list); {no_token}. If it is genuine, "
               "`publisher subscribers remove ADDRESS`" in line for line in kept)
    assert "4 not acted on" in again.stdout


def test_a_token_counts_for_its_own_subscriber_only_whatever_the_report_names(mailing, tmp_path):
    config = mailing.setup(["owner@example.net", "victim@example.net", "other@example.net"],
                           bounce_address=VERP, bounce_mailbox="maildir:bounces")
    mailing.send(1)
    # owner's own signed token, on a report that names victim (and other, in a second block)
    forged = many_recipients_dsn(["other@example.net", "victim@example.net"], to=verp_to(config, "owner@example.net"))
    write_maildir(tmp_path / "site" / "bounces", [forged])
    result = cli(config, "bounces")
    assert "1 messages handled: 1 hard, 0 soft, 0 complaints, 0 ignored; 1 addresses suppressed" in result.stdout
    assert statuses(config) == {"owner@example.net": "bounced", "victim@example.net": "active",
                                "other@example.net": "active"}
    listed = cli(config, "subscribers", "list", "--status", "bounced").stdout
    assert "(the report names victim@example.net)" in listed


def test_a_dsn_listing_5000_recipients_is_one_event_at_most(mailing, tmp_path):
    people = [f"reader{i:04d}@example.net" for i in range(5000)]
    config = mailing.setup(people[:2], bounce_address=VERP, bounce_mailbox="maildir:bounces")
    mailing.send(1)
    with_state(config, lambda s: s.add_subscribers([(a, "") for a in people[2:]]))
    signed = many_recipients_dsn(people, to=verp_to(config, "reader0001@example.net"))
    unsigned = many_recipients_dsn(people[::-1], to=SENDER)
    assert len(signed) > 400_000
    write_maildir(tmp_path / "site" / "bounces", [signed, unsigned])
    started = time.monotonic()
    result = cli(config, "bounces")
    took = time.monotonic() - started
    assert "1 messages handled: 1 hard" in result.stdout and "1 addresses suppressed" in result.stdout
    bounced = [a for a, status in statuses(config).items() if status != "active"]
    assert bounced == ["reader0001@example.net"]
    assert "and more (only the first 20 are read); not acted on: no VERP token" in result.stderr
    assert took < 10, took  # (two such reports took 23 s, suppressing 5,000)


def test_without_verp_check_says_reports_need_a_person(mailing, tmp_path):
    config = mailing.setup(["dead@example.net"], bounce_mailbox="maildir:bounces")
    mailing.send(1)
    write_maildir(tmp_path / "site" / "bounces", [sample("qmail.eml", rcpt="dead@example.net")])
    result = cli(config, "bounces")
    assert "1 not acted on" in result.stdout
    assert "not acted on: no VERP token: VERP is off (newsletter.bounce_address is not set)" in result.stderr
    assert statuses(config) == {"dead@example.net": "active"}
    check = cli(config, "check")
    assert ("VERP is off (newsletter.bounce_address is not set): a report in the bounce mailbox carries no "
            "signed token, so it suppresses nobody") in check.stdout


def test_ten_thousand_soft_bounces_for_one_address_are_recorded_in_linear_time(mailing):
    """A signed webhook batch of 10,000 soft bounces for one address: each used to re-read every
    earlier soft bounce of the subscriber (96 s); the streak is now kept as they go."""
    from publisher.newsletter.bounces import SOFT, BounceReport, Event, apply_events

    config = mailing.setup(["flaky@example.net", "fine@example.net"], soft_bounce_limit=3)
    mailing.send(1)
    events = [Event(SOFT, "flaky@example.net", "4.2.2", "mailbox full", f"sendgrid|{i}|flaky@example.net")
              for i in range(10_000)]
    report = BounceReport()
    started = time.monotonic()
    with_state(config, lambda s: apply_events(events, config, s, source="sendgrid",
                                              now=datetime.now(timezone.utc), report=report))
    took = time.monotonic() - started
    assert (report.soft, report.duplicates, report.suppressed) == (10_000, 0, [])  # one digest: a streak of 1
    assert statuses(config) == {"flaky@example.net": "active", "fine@example.net": "active"}
    assert took < 20, took
    report = BounceReport()
    with_state(config, lambda s: apply_events(events[:10], config, s, source="sendgrid",
                                              now=datetime.now(timezone.utc), report=report))
    assert (report.soft, report.duplicates) == (0, 10)


def test_a_feedback_loop_report_counts_by_the_token_of_the_copy_it_returns(mailing, tmp_path):
    """Feedback loops mail ARF reports to an address of their own, not the envelope sender:
    the token is in the report's Original-Mail-From and the returned copy's Return-Path."""
    config = mailing.setup(["reader@example.net", "other@example.net"], bounce_address=VERP,
                           bounce_mailbox="maildir:bounces")
    mailing.send(1)
    verp = verp_to(config, "reader@example.net")
    fbl = sample("arf-abuse.eml", rcpt="redacted@hotmail.example", to="fbl@blog.test.example").replace(
        b"Original-Mail-From: <fbl@blog.test.example>", f"Original-Mail-From: <{verp}>".encode())
    returned = sample("arf-abuse.eml", rcpt="redacted@hotmail.example", to="fbl@blog.test.example",
                      unique="returned").replace(
        b"From: Test Blog <news@blog.test.example>", f"Return-Path: <{verp}>\nFrom: Test Blog <news@blog.test.example>".encode())
    # a token in the returned copy's body counts for nothing
    body_only = sample("arf-abuse.eml", rcpt="other@example.net", to="fbl@blog.test.example",
                       unique="body").replace(b"Spam Spam Spam\nSpam", f"Spam {verp}\nSpam".encode())
    write_maildir(tmp_path / "site" / "bounces", [fbl])
    assert "1 complaints" in cli(config, "bounces").stdout
    assert statuses(config) == {"reader@example.net": "unsubscribed", "other@example.net": "active"}
    with_state(config, lambda s: s.reactivate_subscriber("reader@example.net", reason="test",
                                                         now=datetime.now(timezone.utc)))
    write_maildir(tmp_path / "site" / "bounces", [returned, body_only])
    result = cli(config, "bounces")
    assert "1 messages handled: 0 hard, 0 soft, 1 complaints" in result.stdout and "1 not acted on" in result.stdout
    assert statuses(config) == {"reader@example.net": "unsubscribed", "other@example.net": "active"}
