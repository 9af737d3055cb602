"""The one Jinja environment: bundled templates, the site's overrides, the pages' context.

Every template publisher renders goes through `environment(config)`: the digest and alert
mails (newsletter/digest.py), the subscribers' pages and the confirmation mail (web.py), and
the newsletter archive (newsletter/archive.py). A file in the site's templates/ replaces the
bundled one of the same name; a typo in a template stops the render with the file's name
(StrictUndefined, `template_problem`) instead of mailing every subscriber a blank.

Jinja2 itself is imported only when an environment is made: digest.py, message.py and the
archive import this module on paths that render nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .config import Config
from .errors import ConfigError

BUNDLED_TEMPLATES = Path(__file__).parent / "templates"

# A confirmation link works this long after it was mailed: web.py enforces it, and the pages
# and the confirmation mail say it (page_context's confirm_days).
CONFIRM_TTL = timedelta(days=7)

# One environment per config object: its compiled templates serve every render of a send
# (a digest over many topic sets renders once per set). Jinja still re-reads a template file
# whose modification time changed.
_ENVIRONMENTS: dict[int, tuple[Config, Any]] = {}


def environment(config: Config):
    """The Jinja2 environment for `config`, made once per config object: for the mails of a
    send. A template already loaded is not looked up again in the site's templates/ (a
    new override there is seen by a new config, or new_environment)."""
    cached = _ENVIRONMENTS.get(id(config))
    if cached is not None and cached[0] is config:
        return cached[1]
    env = new_environment(config)
    _ENVIRONMENTS.clear()  # one config at a time in practice; never a growing cache
    _ENVIRONMENTS[id(config)] = (config, env)
    return env


def new_environment(config: Config):
    """A fresh environment: the site's templates/ first, then the bundled ones, autoescaped
    for .html, with the `date` filter in the site's time zone. The pages (web.py, the
    archive) take a fresh one each time they start rendering."""
    # lazy: Jinja2 (~30 ms); digest.py, message.py and the archive import this module
    # without rendering
    from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined, select_autoescape

    # The site's own templates/ first: a file there replaces the bundled one of that name.
    loader = ChoiceLoader([FileSystemLoader(config.templates_dir), FileSystemLoader(BUNDLED_TEMPLATES)])
    env = Environment(
        loader=loader,
        autoescape=select_autoescape(["html", "htm"], default_for_string=False, default=False),
        # StrictUndefined: a typo in a site's template stops the render with its name instead
        # of mailing every subscriber a blank (or showing a visitor a blank page).
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    tz = config.tz
    env.filters["date"] = lambda value, fmt=None: format_date(value, tz, fmt)
    return env


def render_string(config: Config, source: str, context: dict[str, Any]) -> str:
    """A one-line template from the config (newsletter.subject): the environment's filters
    and StrictUndefined, without autoescaping or its block whitespace rules. Raises
    jinja2.TemplateError as Jinja does; the caller names the config key."""
    plain = environment(config).overlay(autoescape=False, trim_blocks=False,
                                        lstrip_blocks=False, keep_trailing_newline=False)
    return plain.from_string(source).render(context)


def format_date(value: datetime, tz: tzinfo, fmt: str | None = None) -> str:
    local = value.astimezone(tz)
    if fmt:
        return local.strftime(fmt)
    return f"{local.day} {local:%B %Y}"


def page_context(config: Config) -> dict[str, Any]:
    """What every page template sees (the subscribers' pages, the confirmation mail, the
    archive)."""
    return {
        "site": config.site,
        "site_url": config.site.url,
        "site_host": urlsplit(config.site.url).netloc,
        "web_url": config.web_url,
        "subscribe_url": config.web_url + "/subscribe",
        "confirm_days": CONFIRM_TTL.days,
    }


def template_label(config: Config, name: str) -> str:
    """How a message names template `name`: the site's file, or the bundled one."""
    site_file = config.templates_dir / name
    if site_file.is_file():
        try:
            return str(site_file.relative_to(config.root))
        except ValueError:
            return str(site_file)
    return f"bundled template {name}"


def template_problem(config: Config, name: str, e: Exception) -> ConfigError:
    """A Jinja2 failure as a ConfigError naming the template file (the site's own, or the
    bundled one) and the line, for the mail templates and the web pages alike."""
    # lazy: Jinja2 (~30 ms), as in new_environment
    from jinja2 import TemplateNotFound, TemplateSyntaxError

    if isinstance(e, TemplateNotFound):
        return ConfigError(
            f"template {e.name}: not found in {config.templates_dir} nor among the bundled templates"
        )
    if isinstance(e, TemplateSyntaxError):
        return ConfigError(f"{template_label(config, e.name or name)}: line {e.lineno}: {e.message}")
    return ConfigError(f"{template_label(config, name)}: {e}")  # UndefinedError and friends


def render(env: Any, config: Config, name: str, context: dict[str, Any]) -> str:
    """Template `name` rendered; a Jinja2 failure as template_problem's ConfigError."""
    # lazy: Jinja2 (~30 ms), as in new_environment
    from jinja2 import TemplateError

    try:
        return env.get_template(name).render(context)
    except TemplateError as e:
        raise template_problem(config, name, e) from e


__all__ = ["BUNDLED_TEMPLATES", "CONFIRM_TTL", "environment", "format_date", "new_environment",
           "page_context", "render", "render_string", "template_label", "template_problem"]
