"""One module per blog engine: how `publisher init` recognises the engine's folder and reads
its config (posts folder, URL pattern, site title and address...). Each module has NAME (the
content.dialect it writes), LABEL (the engine's name for people) and `detect(folder) ->
Detected | None`, which only reads. No other module names an engine's files.

The engines' rules for reading posts (front matter, dates, slugs) are still in
content/dialects.py; they are planned to move here too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from . import astro, docusaurus, eleventy, hexo, hugo, jekyll, nanoc, pelican, starlight, zola
from .base import Detected, Fact

__all__ = ["ENGINES", "DETECTORS", "Detected", "Fact", "detect", "label"]

ENGINES = (starlight, astro, hugo, hexo, jekyll, eleventy, pelican, nanoc, docusaurus, zola)

# The order engines are asked in: a surer marker first. Starlight is an Astro site with a plugin;
# hugo.toml is Hugo's alone, but a plain config.toml (Zola's too) is taken for Hugo's only when
# nothing else claimed the folder; Hexo keeps its config in _config.yml as Jekyll does, so
# Hexo's surer signs (package.json, source/_posts) are looked for first.
DETECTORS: tuple[Callable[[Path], Detected | None], ...] = (
    starlight.detect, astro.detect, hugo.detect, hexo.detect, jekyll.detect, eleventy.detect,
    pelican.detect, nanoc.detect, docusaurus.detect, zola.detect, hugo.detect_late,
)


def detect(folder: Path) -> Detected | None:
    """The first engine that knows `folder`, with what its config says; None if none does."""
    for ask in DETECTORS:
        found = ask(folder)
        if found is not None:
            return found
    return None


def label(name: str | None) -> str:
    """The engine's name for people ("Hugo"), or "" for none."""
    return next((e.LABEL for e in ENGINES if e.NAME == name), "")
