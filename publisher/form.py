"""`publisher form`: the subscribe form to paste into the blog's own pages, a static host's too.

It posts to `publisher serve` (web.py), which accepts it from the pages of site.url's origin and
of newsletter.form_origins: such a page cannot hold the signed token of serve's own form, and the
Origin every browser sends with a POST stands in for it (web.embedded_origin). The form's text
and CSS come from the template form_embed.html, which the site may override like any other.
"""

from __future__ import annotations

from .config import Config
from .templating import new_environment, page_context, render

TEMPLATE = "form_embed.html"


def render_form(config: Config) -> str:
    """The form's HTML, with its CSS, for a page of the blog."""
    return render(new_environment(config), config, TEMPLATE, page_context(config))
