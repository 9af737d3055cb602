"""Helpers for tests/test_digest.py: a sites.Site with slug-named posts read back with the real
parsers (config.load_config, content.read_post), and readers of the rendered HTML."""

from __future__ import annotations

import re
import shutil
from email import message_from_bytes, policy
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import sites
from sites import Site, write_post

FIXTURES = sites.FIXTURES / "digest"


class DigestSite(Site):
    """A sites.Site whose posts are named by slug and read back with content.read_post."""

    def __init__(self, root: Path):
        super().__init__(root)
        self._count = 0

    def config(self, **sections: Any):
        """config.yaml rewritten from the defaults with these overrides, loaded for real."""
        self.write_config(**sections)
        return super().config()

    def write_post(self, slug: str, **front: Any) -> Path:
        self._count += 1
        front.setdefault("title", f"Post {slug}")
        front.setdefault("pubDate", f"2024-01-{self._count % 28 + 1:02d}T10:00:00Z")
        body = front.pop("body", "Some body text.\n")
        return write_post(self.root, f"{slug}.md", front, "\n" + body)

    def post(self, config, slug: str, **front: Any):
        from publisher.content import read_post

        return read_post(self.write_post(slug, **front), config)

    def fixture_post(self, config, name: str):
        from publisher.content import read_post

        target = self.root / "content" / name
        shutil.copyfile(FIXTURES / name, target)
        return read_post(target, config)

    def install_templates(self, folder: str = "site-templates") -> Path:
        target = self.root / "templates"
        shutil.copytree(FIXTURES / folder, target, dirs_exist_ok=True)
        return target


def parts(msg: EmailMessage) -> tuple[str, str]:
    """(text, html) bodies of a multipart/alternative message, decoded."""
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    return text, html


def reparse(msg: EmailMessage | bytes, serialise_policy=None) -> EmailMessage:
    """A message (or message.py's bytes) read back as a mail client would."""
    if isinstance(msg, bytes) or hasattr(msg, "raw"):
        data = msg if isinstance(msg, bytes) else msg.raw  # message.py's bytes as sent
    else:
        data = msg.as_bytes(policy=serialise_policy) if serialise_policy else msg.as_bytes()
    return message_from_bytes(data, policy=policy.default)


class TagCollector(HTMLParser):
    """Every start tag as (name, {attr: value}), entities decoded."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))
        if tag in ("style", "title"):
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "title"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.text.append(data)


def tags(html: str) -> TagCollector:
    collector = TagCollector()
    collector.feed(html)
    collector.close()
    return collector


def by_class(html: str, tag: str, cls: str) -> list[dict[str, str]]:
    return [a for t, a in tags(html).tags if t == tag and cls in a.get("class", "").split()]


def order_of(haystack: str, needles: list[str]) -> list[int]:
    return [haystack.index(n) for n in needles]


def style_blocks(html: str) -> list[str]:
    return re.findall(r"<style[^>]*>(.*?)</style>", html, re.S | re.I)
