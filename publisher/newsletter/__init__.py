"""posts -> messages -> deliveries: digest.py renders a digest, topics.py decides who gets
which posts, message.py builds every message's bytes (headers, MIME, DKIM, the sender),
smtp.py is one SMTP session, delivery.py schedules many (rate, retries,
refusals), sending.py runs the ledger loop and every other send, archive.py
writes the public archive of sent issues, subscribers.py validates and imports addresses,
bounces.py (with bounce_mailbox.py) turns late bounces and complaints into suppressions."""
