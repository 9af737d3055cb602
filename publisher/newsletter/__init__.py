"""posts -> messages -> deliveries: digest.py renders a digest, delivery.py speaks SMTP,
sending.py runs the ledger loop, subscribers.py validates and imports addresses."""
