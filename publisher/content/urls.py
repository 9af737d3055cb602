"""A post's URL: the front matter's explicit path, else content.permalink with its placeholders
filled, as the site's engine (engines/*.py) says each part is made."""

from __future__ import annotations

import re
from datetime import datetime
from urllib.parse import quote

from ..config import Config
from ..engines import engine_for
from ..engines.rules import Engine, Fields


def post_url(config: Config, engine: Engine, fields: Fields, published: datetime,
             explicit: str | None) -> str:
    """The post's absolute URL: the front matter's explicit path, else content.permalink
    with its placeholders filled (a date's parts as engine.url_date says, or the engine's own
    from the file's path: Fields.url_date); a translation's
    path gets its language (under /<lang>/) unless the permalink places {lang} itself."""
    if explicit is not None:
        if re.match(r"^https?://", explicit, re.I):
            return explicit
        path = "/" + explicit.lstrip("/")
        if (fields.lang and engine.prefix_explicit_url and "{lang}" not in config.content.permalink
                and not path.startswith(f"/{fields.lang}/")):
            path = engine.translated(path, fields.lang)
        path = engine.explicit_dates(path, engine.url_date(published, config))
        path = engine.finished_path(path, True, config.content.permalink)
        return config.site.url + quote(path, safe="/~-._%@+!$&'()*,;=:")
    local = engine.url_date(published, config)
    year, month, day = fields.url_date or (f"{local.year:04d}", f"{local.month:02d}", f"{local.day:02d}")
    template = config.content.permalink
    path = template.format(
        slug=fields.slug, year=year, month=month, day=day,
        i_month=month.lstrip("0") or month, i_day=day.lstrip("0") or day,
        title=fields.title_slug, stem=fields.stem,
        section=fields.section, categories=fields.categories, lang=fields.lang,
        path=fields.path or fields.stem, contentbasename=fields.basename or fields.stem,
    )
    path = re.sub(r"/{2,}", "/", path)  # an empty {section}, {categories}, {lang} or url_date
    if fields.lang and "{lang}" not in template:
        path = engine.translated(path, fields.lang)
    path = engine.finished_path(path, False, template)
    return config.site.url + quote(path, safe="/~-._@+!$&'()*,;=:")


def permalink(config: Config, slug: str, published: datetime) -> str:
    """content.permalink for a post of the site's language known only by slug and date."""
    fields = Fields(slug=slug, stem=slug, title_slug=slug, section="", categories="", lang="")
    return post_url(config, engine_for(config), fields, published, None)
