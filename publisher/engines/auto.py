"""content.dialect "auto": no engine named. The contract's defaults for a post's file and
front matter (rules.Engine), with every engine's syntax resolved, and the site variables
of the engines whose syntax needs them."""

from __future__ import annotations

from typing import Any

from .docusaurus import ADMONITIONS
from .eleventy import eleventy_global_data
from .jekyll import jekyll_site
from .rules import Engine, Syntax
from .starlight import ASIDES


class Auto(Engine):
    name = "auto"
    # Every syntax but those that would misread another engine's posts: `{: #id}` inline
    # (kramdown only), Nunjucks tag plugins, Pelican's liquid_tags, .md as MDX, `Key: value`
    # headers.
    # Admonitions: Starlight's and Docusaurus's types (Docusaurus's titles where both have one).
    syntax = Syntax(liquid=True, shortcodes=True, text_directives=True, admonition_title_after_name=True,
                    admonitions=tuple({a[0]: a for a in (*ASIDES, *ADMONITIONS)}.values()),
                    heading_ids=True, kramdown_ial=True, page_bundles=True, internal_links=True)

    def site_variables(self, root: str, files: Any) -> dict[str, Any]:
        """Jekyll's `site` first, then Eleventy's global data under the other names."""
        found = jekyll_site(root, files)
        found.update(eleventy_global_data(root, files, taken=found))
        return found


RULES = Auto()
