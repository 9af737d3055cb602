"""publisher: feeds and an exactly-once newsletter for a folder of Markdown posts."""

__version__ = "0.1.0"
