"""One exception family. The CLI catches PublisherError and prints its message; anything
else is a bug and keeps its traceback."""


class PublisherError(Exception):
    """An error with a message meant for the person running publisher."""

    exit_status = 1

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(PublisherError):
    """config.yaml (or a command-line option) is wrong; nothing has been done."""

    exit_status = 2


class UsageError(PublisherError):
    """The command line asks for something impossible (options that exclude each other, an
    invalid argument); nothing has been done."""

    exit_status = 2


class ContentError(PublisherError):
    """An input file cannot be read as what it should be: a post, a subscribers CSV."""


class StateError(PublisherError):
    """The state database cannot be used as it is (empty, not publisher's, damaged, newer than
    this publisher, unreachable)."""


class OutputError(PublisherError):
    """A file publisher writes (a feed, its folder) cannot be written or removed."""


class DeliveryError(PublisherError):
    """Mail could not be handed to the SMTP server."""


class MailboxError(PublisherError):
    """The bounce mailbox (IMAP, Maildir or mbox) cannot be read."""


class ServeError(PublisherError):
    """`publisher serve` cannot listen where it was asked to."""


class RecipientError(DeliveryError):
    """One recipient's address cannot be put in a message: that subscriber is bounced, and
    everyone else is still mailed."""


class LockedError(PublisherError):
    """Another run holds the run lock."""

    exit_status = 0
