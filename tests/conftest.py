"""Shared fixtures. Add fixtures with names prefixed by their area; don't rewrite others'."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


class Site:
    """A throwaway site folder: config.yaml plus posts, written as real files."""

    def __init__(self, root: Path):
        self.root = root
        self.content = root / "content"
        self.content.mkdir(parents=True, exist_ok=True)
        self.config_overrides: dict = {}
        self.write_config()

    def write_config(self, **sections: dict) -> Path:
        """config.yaml with test defaults; each keyword merges keys into that section."""
        import yaml

        data = {
            "site": {"title": "Test Blog", "url": "https://blog.test.example",
                     "description": "A blog for tests",
                     "author": {"name": "Site Author", "email": "author@blog.test.example"}},
            "content": {"dir": "content", "permalink": "/blog/{slug}/"},
            "feeds": {"output_dir": "public", "limit": 20},
            "newsletter": {"from": "Test Blog <news@blog.test.example>", "schedule": "0 9 * * 1",
                           "timezone": "UTC"},
            "state": {"database": "state.db"},
        }
        for name, values in sections.items():
            data.setdefault(name, {}).update(values)
        path = self.root / "config.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
        return path

    def post(self, rel: str, front: str, body: str = "Hello.\n", *, raw: bytes | None = None) -> Path:
        path = self.content / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if raw is not None:
            path.write_bytes(raw)
        else:
            path.write_text("---\n" + textwrap.dedent(front).strip() + "\n---\n" + body, encoding="utf-8")
        return path

    def config(self):
        from publisher.config import load_config

        return load_config(self.root / "config.yaml")


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return Site(tmp_path / "site")
