"""One module per blog engine, holding all that is the engine's: how `publisher init`
recognises its folder and reads its config (posts folder, URL pattern, site title and
address...), and what its post files and front matter mean (dates, slugs, URLs, taxonomies,
languages, drafts, the syntax its bodies hold). Each module has NAME (the content.dialect
it is), LABEL (the engine's name for people), `detect(folder) -> Detected | None` (which
only reads) and RULES (its rules.Engine). auto.py is the dialect "auto". No module outside
engines/ names an engine; a new engine is a module here, its line below and in
config.DIALECTS, and its tests.

A build imports only the engine its config names (`rules_for`): the others' modules are
imported when `init` asks them all (ENGINES, DETECTORS, detect).
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

from ..config import DIALECTS, Config
from .base import Detected, Fact
from .rules import Engine

__all__ = ["ENGINES", "DETECTORS", "Detected", "Engine", "Fact", "detect", "engine_for", "label", "rules_for"]

# The order engines are asked in by `detect`: a surer marker first. Starlight is an Astro
# site with a plugin; hugo.toml is Hugo's alone, but a plain config.toml (Zola's too) is taken
# for Hugo's only when nothing else claimed the folder (hugo.detect_late, last); Hexo keeps
# its config in _config.yml as Jekyll does, so Hexo's surer signs (package.json,
# source/_posts) are looked for first.
_ORDER = ("starlight", "astro", "hugo", "hexo", "jekyll", "eleventy", "pelican", "nanoc", "docusaurus", "zola")


def _module(name: str) -> ModuleType:
    if name not in DIALECTS:  # (never a name from outside the list: it is imported)
        raise KeyError(name)
    return importlib.import_module(f"{__name__}.{name}")


_RULES: dict[str, Engine] = {}


def rules_for(dialect: str) -> Engine:
    """The rules of the engine `dialect` names ("auto" for none)."""
    rules = _RULES.get(dialect)
    if rules is None:
        rules = _RULES[dialect] = _module(dialect).RULES
    return rules


# engine_for is asked for every post; what the site's own config says (Hugo's
# disablePathToLower, Zola's [slugify]) costs stat calls (~70 us for Hugo's config files), so
# the answer for a config is kept for a second: a build sees one answer, a long-running
# `serve` or `schedule` a changed site config within a second.
_SITE_RULES: dict[int, tuple[Config, float, Engine]] = {}


def engine_for(config: Config) -> Engine:
    """The rules of the engine config names, as the site's own engine config sets them."""
    rules = rules_for(config.content.dialect)
    if type(rules).for_site is Engine.for_site:
        return rules  # (reads nothing of the site)
    now = time.monotonic()
    kept = _SITE_RULES.get(id(config))
    if kept is not None and kept[0] is config and now - kept[1] < 1.0:
        return kept[2]
    site = rules.for_site(config)
    if len(_SITE_RULES) > 16:
        _SITE_RULES.clear()
    _SITE_RULES[id(config)] = (config, now, site)
    return site


def _detectors() -> tuple[Callable[[Path], Detected | None], ...]:
    return (*(_module(name).detect for name in _ORDER), _module("hugo").detect_late)


def __getattr__(name: str) -> Any:
    if name == "ENGINES":  # the engine modules, in the order they are asked in
        return tuple(_module(n) for n in _ORDER)
    if name == "DETECTORS":
        return _detectors()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def detect(folder: Path) -> Detected | None:
    """The first engine that knows `folder`, with what its config says; None if none does."""
    for ask in _detectors():
        found = ask(folder)
        if found is not None:
            return found
    return None


def label(name: str | None) -> str:
    """The engine's name for people ("Hugo"), or "" for none."""
    return _module(name).LABEL if name in DIALECTS and name != "auto" else ""
