"""content/syntax.py: Liquid, Hugo shortcodes and MDX resolved before Markdown, never in code;
and, through `publisher build` writing real feeds, one small site per engine in its own layout."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from publisher.content.syntax import SyntaxContext, resolve

POSTS = {"post_url:2020-01-05-second": "https://ex.org/blog/2020/01/05/second.html",
         "link:_posts/2020-01-05-second.md": "https://ex.org/blog/2020/01/05/second.html",
         "ref:posts/other.md": "https://ex.org/posts/other/",
         "ref:other#part": "https://ex.org/posts/other/#part"}


def ctx(dialect="auto", mdx=False, site_url="https://ex.org/blog", **params) -> SyntaxContext:
    return SyntaxContext(site_url, dialect=dialect, mdx=mdx, params=params,
                         post_link=lambda kind, target: POSTS.get(f"{kind}:{target}"))


def run(text: str, context: SyntaxContext | None = None) -> tuple[str, list[str]]:
    resolved = resolve(textwrap.dedent(text), context or ctx())
    return resolved.text, resolved.unresolved


# --- Liquid -----------------------------------------------------------------------------

def test_liquid_raw_is_unwrapped_and_its_content_left_as_written():
    text, unresolved = run("Show {% raw %}{{ page.title }} and {% include x.html %}{% endraw %} here.\n")
    assert text == "Show {{ page.title }} and {% include x.html %} here.\n"
    assert unresolved == []


def test_liquid_raw_around_a_fenced_block_and_whitespace_control():
    text, unresolved = run("""\
        {%- raw -%}
        ```liquid
        {{ site.url }}
        ```
        {%- endraw -%}
        """)
    assert text == "\n```liquid\n{{ site.url }}\n```\n\n"
    assert unresolved == []


def test_liquid_highlight_becomes_a_fenced_code_block_of_its_language():
    text, unresolved = run("""\
        Before.

        {% highlight ruby linenos %}
        def hello = puts "{{ not_liquid }}"
        {% endhighlight %}

        After.
        """)
    assert text == 'Before.\n\n\n```ruby\ndef hello = puts "{{ not_liquid }}"\n```\n\n\nAfter.\n'
    assert unresolved == []


def test_liquid_site_url_baseurl_filters_and_page_variables():
    text, unresolved = run(
        "{{ site.url }}{{ site.baseurl }}/about/ · {{ '/img/a.png' | relative_url }} · "
        '{{ "/feed.xml" | absolute_url }} · {{ page.title }} · {{ title }}\n',
        ctx(title="Tom & Jerry"))
    assert text == ("https://ex.org/blog/about/ · /blog/img/a.png · https://ex.org/blog/feed.xml · "
                    "Tom &amp; Jerry · Tom &amp; Jerry\n")
    assert unresolved == []


def test_liquid_post_url_and_link_become_the_posts_urls():
    text, unresolved = run("[2nd]({% post_url 2020-01-05-second %}) and "
                           "[again]({% link _posts/2020-01-05-second.md %})\n")
    assert text == ("[2nd](https://ex.org/blog/2020/01/05/second.html) and "
                    "[again](https://ex.org/blog/2020/01/05/second.html)\n")
    assert unresolved == []


def test_liquid_unknown_tags_and_variables_are_dropped_and_named_once_each():
    text, unresolved = run("""\
        {% include figure.html  src="a.png" %}
        {% if page.toc %}Table{% endif %} {{ page.nope }} {{ site.data.x | jsonify }}
        {% comment %}a note to self {% include y %}{% endcomment %}{% include figure.html  src="a.png" %}
        [gone]({% post_url 2019-09-09-missing %})
        """)
    assert text == "\nTable  \n\n[gone]()\n"
    # In the order the post has them.
    assert unresolved == ['{% include figure.html src="a.png" %}', "{% if page.toc %}", "{{ page.nope }}",
                          "{{ site.data.x | jsonify }}", "{% post_url 2019-09-09-missing %}"]


# --- Hugo shortcodes --------------------------------------------------------------------

def test_figure_with_title_caption_and_attribution():
    text, unresolved = run('{{< figure src="/images/a.jpg" alt="A lake" title="Lake" '
                           'caption="At dawn" attr="Ana" attrlink="https://ana.example" >}}\n')
    assert text == ('<figure><img src="/images/a.jpg" alt="A lake"><figcaption><h4>Lake</h4>'
                    '<p>At dawn <a href="https://ana.example">Ana</a></p></figcaption></figure>\n')
    assert unresolved == []


def test_youtube_vimeo_gist_x_tweet_become_plain_links():
    text, unresolved = run("""\
        {{< youtube w7Ft2ymGmfc >}}
        {{< youtube id="w7Ft2ymGmfc" title="A talk" >}}
        {{< vimeo 146022717 >}}
        {{< gist spf13 7896402 "img.html" >}}
        {{< x user="SanDiegoZoo" id="1453110110599868418" >}}
        {{< tweet user="jack" id="20" >}}
        """)
    assert text.split("\n") == [
        '<a href="https://www.youtube.com/watch?v=w7Ft2ymGmfc"><img src="https://i.ytimg.com/vi/'
        'w7Ft2ymGmfc/hqdefault.jpg" alt="YouTube video"></a>',
        '<a href="https://www.youtube.com/watch?v=w7Ft2ymGmfc"><img src="https://i.ytimg.com/vi/'
        'w7Ft2ymGmfc/hqdefault.jpg" alt="A talk"></a>',
        '<a href="https://vimeo.com/146022717">Vimeo video</a>',
        '<a href="https://gist.github.com/spf13/7896402#file-img-html">Gist spf13/7896402 (img.html)</a>',
        '<a href="https://x.com/SanDiegoZoo/status/1453110110599868418">Post by @SanDiegoZoo</a>',
        '<a href="https://twitter.com/jack/status/20">Post by @jack</a>',
        "",
    ]
    assert unresolved == []


def test_highlight_ref_relref_param_and_details_in_both_forms():
    text, unresolved = run("""\
        See {{< ref "posts/other.md" >}} and {{% relref "other#part" %}}; by {{< param "author.name" >}}.

        {{< highlight go "linenos=table" >}}
        x := `{{< not_a_shortcode >}}`
        {{< /highlight >}}

        {{% details summary="More" open=true %}}
        Inner **text**.
        {{% /details %}}
        """, ctx(dialect="hugo", author={"name": "Ana"}))
    assert text == ("See https://ex.org/posts/other/ and https://ex.org/posts/other/#part; by Ana.\n\n\n"
                    "```go\nx := `{{< not_a_shortcode >}}`\n```\n\n\n"
                    "<details open>\n<summary>More</summary>\n\nInner **text**.\n\n</details>\n")
    assert unresolved == []


def test_unknown_shortcodes_are_dropped_with_inner_content_kept_and_named():
    text, unresolved = run("""\
        {{< notice warning >}}Mind the **gap**.{{< /notice >}}
        {{< instagram BWNjjyYFxVx >}} {{< tweet >}} {{< ref "nowhere.md" >}} {{< param nope >}}
        a {{< /orphan >}} b
        """, ctx(dialect="hugo"))
    assert text == "Mind the **gap**.\n   \na  b\n"
    assert unresolved == ["{{< notice warning >}}", "{{< instagram BWNjjyYFxVx >}}", "{{< tweet >}}",
                          '{{< ref "nowhere.md" >}}', "{{< param nope >}}", "{{< /orphan >}}"]


def test_hugo_comment_form_shows_a_shortcode_as_text():
    text, unresolved = run('Write {{</* figure src="x.png" */>}} to get a figure.\n', ctx(dialect="hugo"))
    assert text == 'Write {{< figure src="x.png" >}} to get a figure.\n'
    assert unresolved == []


# --- dialects: each engine's own syntax only ----------------------------------------------

def test_a_hugo_site_leaves_double_braces_alone_and_a_jekyll_site_shortcodes():
    assert run("{{ .Title }} {{< youtube abc >}}\n", ctx(dialect="hugo"))[0].startswith("{{ .Title }} <a ")
    # Jekyll runs no shortcodes: to its Liquid, that is a variable it cannot resolve.
    assert run("{{< youtube abc >}} {{ site.url }}\n", ctx(dialect="jekyll")) == (
        " https://ex.org\n", ["{{< youtube abc >}}"])


# --- MDX --------------------------------------------------------------------------------

def test_mdx_imports_exports_components_and_comments():
    text, unresolved = run("""\
        import { Image } from 'astro:assets';
        import Aside from '../../components/Aside.astro';
        import {
          Tabs,
          TabItem,
        } from "@astrojs/starlight/components";
        export const meta = { draft: false };

        # Hello {/* a comment */}

        <Aside type="tip" when={count > 1}>
        Children **stay**.
        </Aside>

        <Tabs><TabItem label="npm">npm i</TabItem></Tabs> and <Image src={cover} alt="" /> end.
        Importing data is a sentence, not a statement.

        import the data first: a sentence too.
        """, ctx(dialect="astro", mdx=True))
    assert text == ("\n# Hello \n\n\nChildren **stay**.\n\n\nnpm i and  end.\n"
                    "Importing data is a sentence, not a statement.\n\nimport the data first: a sentence too.\n")
    assert unresolved == ["<Image />"]


def test_mdx_components_indented_children_are_a_paragraph_not_code():
    text, unresolved = run("""\
        Here is a component:

        <HeaderLink href="#" onclick="alert('clicked!')">
        \tEmbedded component in MDX
        </HeaderLink>

        - a list

              with an indented continuation
        """, ctx(dialect="astro", mdx=True))
    assert text == ("Here is a component:\n\n\nEmbedded component in MDX\n\n\n- a list\n\n"
                    "      with an indented continuation\n")
    assert unresolved == []


def test_mdx_expressions_are_dropped_and_named():
    text, unresolved = run("Written {frontmatter.pubDate} by <b>me</b>.\n", ctx(dialect="astro", mdx=True))
    assert text == "Written  by <b>me</b>.\n"
    assert unresolved == ["{frontmatter.pubDate}"]


# --- code is never touched --------------------------------------------------------------

CODE = """\
Use `{% raw %}` and `{{< figure >}}` in prose code spans, or ``{{% x %}}``.

```markdown
{% raw %}
{{< youtube abc >}}
{% include x.html %}
import X from "y"
<Aside />
```

~~~~
{{ site.url }}
~~~~

    {% highlight ruby %}
    {{< x >}}

1. A list item

    continued, not code: {{ site.url }}
"""


@pytest.mark.parametrize("dialect, mdx", [("auto", False), ("hugo", False), ("jekyll", False),
                                          ("astro", True)])
def test_code_blocks_and_spans_are_left_exactly_as_written(dialect, mdx):
    text, unresolved = run(CODE, ctx(dialect=dialect, mdx=mdx))
    # Only the last line is prose, and what it holds is resolved as each engine would.
    prose = {"auto": ("https://ex.org", []), "jekyll": ("https://ex.org", []),
             "hugo": ("{{ site.url }}", []), "astro": ("", ["{{ site.url }}"])}[dialect]
    assert text == CODE.replace("continued, not code: {{ site.url }}", "continued, not code: " + prose[0])
    assert unresolved == prose[1]


def test_a_raw_pair_inside_code_is_unwrapped_as_jekyll_publishes_it():
    text, unresolved = run("""\
        ```html
        {% raw %}<title>{{ page.title }}</title>{% endraw %}
        ```
        Inline: `{% raw %}{{ x }}{% endraw %}`.
        """, ctx(dialect="jekyll"))
    assert text == "```html\n<title>{{ page.title }}</title>\n```\nInline: `{{ x }}`.\n"
    assert unresolved == []


def test_a_lone_backtick_does_not_hide_the_next_paragraphs_syntax():
    text, unresolved = run("Press the ` key.\n\nThen {{< youtube abc >}} and `code`.\n", ctx(dialect="hugo"))
    assert text == ("Press the ` key.\n\nThen <a href=\"https://www.youtube.com/watch?v=abc\"><img "
                    'src="https://i.ytimg.com/vi/abc/hqdefault.jpg" alt="YouTube video"></a> and `code`.\n')
    assert unresolved == []


def test_text_without_engine_syntax_is_returned_as_it_is():
    body = "# Title\n\nPlain *Markdown* with {braces} and 50% off.\n"
    assert run(body) == (body, [])


# --- each engine's site, through `publisher build` --------------------------------------

PUBLISHER = [sys.executable, "-c", "from publisher.cli import main; main()"]


def write(root: Path, files: dict[str, str | bytes]) -> None:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(textwrap.dedent(data).lstrip("\n"), encoding="utf-8")


def config_yaml(url: str, content_dir: str, permalink: str, dialect: str) -> str:
    return f"""\
        site: {{title: Engine test, url: "{url}", author: {{name: Ana, email: ana@ex.org}}}}
        content: {{dir: "{content_dir}", permalink: "{permalink}", dialect: {dialect}}}
        feeds: {{output_dir: feeds, limit: 0}}
        newsletter: {{from: "Engine test <news@ex.org>", schedule: "0 9 * * 1", timezone: UTC}}
        state: {{database: "sqlite:///state.db"}}
        """


def build(root: Path, shown: tuple[str, ...] = ()) -> tuple[subprocess.CompletedProcess, dict[str, str]]:
    """`publisher build` in root: the process, and {item url: content_html} of feed.json."""
    proc = subprocess.run(PUBLISHER + ["build"], cwd=root, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert_no_leaks(root, shown)
    return proc, {item["url"]: item["content_html"] for item in feed_items(root)}


def feed_items(root: Path) -> list[dict]:
    return json.loads((root / "feeds" / "feed.json").read_text(encoding="utf-8"))["items"]


def by_title(root: Path) -> dict[str, dict]:
    return {item["title"]: item for item in feed_items(root)}


def assert_no_leaks(root: Path, shown: tuple[str, ...] = ()) -> None:
    """No engine syntax in any feed, outside <code> (where code examples may show it) and
    the `shown` text (code a summary quotes as plain text)."""
    import re

    for name in ("rss.xml", "atom.xml", "feed.json"):
        text = (root / "feeds" / name).read_text(encoding="utf-8")
        text = re.sub(r"(<|&lt;)code.*?(<|&lt;)/code", "", text, flags=re.S)
        for allowed in shown:
            text = text.replace(allowed, "")
        for leak in ("{%", "{{<", "{{%", "import ", "export ", "<Aside", "&lt;Aside", "{/*"):
            assert leak not in text, f"{name}: {leak!r} leaked"


JEKYLL = {
    "_config.yml": "title: Engine test\nurl: https://ex.org\nbaseurl: /blog\nrepository: ana/blog\n",
    "_posts/2020-01-01-welcome.md": """\
        ---
        layout: post
        title: Welcome
        date: 2020-01-01 10:00:00 +0000
        slug: welcome
        ---
        Read [the next one]({% post_url 2020-01-05-second %}) or [the same]({% link _posts/2020-01-05-second.md %}).
        Home: {{ site.url }}{{ site.baseurl }}/ ([source](https://github.com/{{ site.repository }}))

        {% highlight ruby %}
        puts "{{ page.title }}"
        {% endhighlight %}

        {% raw %}Liquid looks like {{ this }}.{% endraw %}

        {% include newsletter-box.html %}
        """,
    "_posts/2020-01-05-second.md": """\
        ---
        title: Second
        date: 2020-01-05
        slug: second
        ---
        Templates use `{% raw %}` blocks:

        ```liquid
        {% raw %}{{ content }}{% endraw %}
        ```
        """,
}


def test_jekyll_site_with_liquid(tmp_path):
    root = tmp_path / "jekyll"
    write(root, {**JEKYLL, "config.yaml": config_yaml("https://ex.org/blog", "_posts",
                                                       "/{year}/{month}/{day}/{slug}.html", "jekyll")})
    # The second post's summary quotes its code span as plain text, as Jekyll's excerpt would.
    shown = ("Templates use {% raw %} blocks:",)
    proc, items = build(root, shown)
    assert proc.returncode == 0  # a warning is said, and leaves the exit status alone
    assert proc.stderr == ("_posts/2020-01-01-welcome.md: unresolved engine syntax: "
                           "{% include newsletter-box.html %}\n")
    second = "https://ex.org/blog/2020/01/05/second.html"
    html = items["https://ex.org/blog/2020/01/01/welcome.html"]
    assert f'<a href="{second}">the next one</a> or <a href="{second}">the same</a>' in html
    # GFM autolinks the bare URL {{ site.url }}{{ site.baseurl }}/ became.
    assert ('Home: <a href="https://ex.org/blog/">https://ex.org/blog/</a> '
            '(<a href="https://github.com/ana/blog">source</a>)') in html
    assert '<pre><code class="language-ruby">puts "{{ page.title }}"\n</code></pre>' in html.replace("&quot;", '"')
    assert "<p>Liquid looks like {{ this }}.</p>" in html
    assert "newsletter-box" not in html
    assert items[second] == ("<p>Templates use <code>{% raw %}</code> blocks:</p>\n"
                             '<pre><code class="language-liquid">{{ content }}\n</code></pre>')
    # Said once: the next build (from the cache) does not repeat it.
    again, _ = build(root, shown)
    assert (again.returncode, again.stderr) == (0, "")
    # _config.yml is what {{ site.repository }} came from: a change to it reaches the feed.
    config = root / "_config.yml"
    config.write_text(config.read_text().replace("ana/blog", "ana/new-blog"))
    _proc, items = build(root, shown)
    assert '<a href="https://github.com/ana/new-blog">source</a>' in items[
        "https://ex.org/blog/2020/01/01/welcome.html"]


HUGO = {
    "hugo.toml": 'baseURL = "https://ex.org/"\ntitle = "Engine test"\n[params]\nauthor = "Ana"\n',
    "content/_index.md": "---\ntitle: Home\n---\n",
    "content/posts/first.md": """\
        ---
        title: First
        date: 2024-03-01T10:00:00Z
        slug: first
        series: Lakes
        ---
        Part of {{< param series >}}. See {{< ref "posts/other/index.md" >}} and [the bundle]({{< relref "other" >}}).

        {{< figure src="/images/banner.png" alt="Banner" caption="The lake at dawn" >}}

        {{< youtube w7Ft2ymGmfc >}}

        {{< highlight go >}}
        fmt.Println("{{< not a shortcode >}}")
        {{< /highlight >}}

        {{% details summary="Spoiler" %}}
        It was **fine**.
        {{% /details %}}

        {{< notice tip >}}Keep the inner text.{{< /notice >}}

        Use `{{</* figure */>}}` in your own posts; code keeps `{{< x >}}` as written:

        ```go-html-template
        {{< x >}}
        ```
        """,
    "content/posts/other/index.md": """\
        ---
        title: Other
        date: 2024-02-01T10:00:00Z
        ---
        ![A photo](photo.jpg)

        {{< gist spf13 7896402 >}} {{< x user="SanDiegoZoo" id="1453110110599868418" >}} {{< instagram BWNjjyYFxVx >}}
        """,
    "content/posts/other/photo.jpg": b"\xff\xd8\xff\xe0 not really a jpeg",
    "static/images/banner.png": b"\x89PNG banner",
}


def test_hugo_site_with_shortcodes_and_a_page_bundle(tmp_path):
    root = tmp_path / "hugo"
    write(root, {**HUGO, "config.yaml": config_yaml("https://ex.org", "content", "/posts/{slug}/", "hugo")})
    proc, items = build(root)
    assert proc.stderr == ("content/posts/first.md: unresolved engine syntax: {{< notice tip >}}\n"
                           "content/posts/other/index.md: unresolved engine syntax: "
                           "{{< instagram BWNjjyYFxVx >}}\n")
    assert proc.returncode == 0
    first = items["https://ex.org/posts/first/"]
    assert ('<p>Part of Lakes. See <a href="https://ex.org/posts/other/">https://ex.org/posts/other/</a> and '
            '<a href="https://ex.org/posts/other/">the bundle</a>.</p>') in first
    assert ('<figure><img src="https://ex.org/images/banner.png" alt="Banner"><figcaption>'
            "<p>The lake at dawn</p></figcaption></figure>") in first
    assert ('<a href="https://www.youtube.com/watch?v=w7Ft2ymGmfc"><img src="https://i.ytimg.com/vi/'
            'w7Ft2ymGmfc/hqdefault.jpg" alt="YouTube video"></a>') in first
    assert ('<pre><code class="language-go">fmt.Println("{{&lt; not a shortcode &gt;}}")\n'
            "</code></pre>") in first
    # (Whether Markdown inside <details> is rendered is the Markdown engine's business.)
    assert re.search(r"<details>\n<summary>Spoiler</summary>\n.*It was .*fine.*\n</details>", first, re.S)
    assert "<p>Keep the inner text.</p>" in first
    assert "<code>{{&lt; figure &gt;}}</code> in your own posts; code keeps <code>{{&lt; x &gt;}}</code>" in first
    assert '<pre><code class="language-go-html-template">{{&lt; x &gt;}}\n</code></pre>' in first
    other = items["https://ex.org/posts/other/"]
    # A page bundle's image is published beside its page: linked there, not copied.
    assert re.findall(r'<img [^>]*src="([^"]*)"', other)[0] == "https://ex.org/posts/other/photo.jpg"
    assert ('<a href="https://gist.github.com/spf13/7896402">Gist spf13/7896402</a> '
            '<a href="https://x.com/SanDiegoZoo/status/1453110110599868418">Post by @SanDiegoZoo</a>') in other
    assert not (root / "feeds" / "media").exists()


ASTRO = {
    "astro.config.mjs": "export default defineConfig({ site: 'https://ex.org' });\n",
    "src/content/blog/first-post.md": """\
        ---
        title: 'First post'
        description: 'Lorem ipsum dolor sit amet'
        pubDate: 2022-07-08
        heroImage: '../../assets/blog-placeholder-3.jpg'
        ---
        Hello.
        """,
    "src/content/blog/using-mdx.mdx": """\
        ---
        title: 'Using MDX'
        pubDate: 2022-06-01
        heroImage: '../../assets/blog-placeholder-5.jpg'
        ---
        import HeaderLink from '../../components/HeaderLink.astro';
        import { Image } from 'astro:assets';
        export const title = 'Using MDX';

        This theme comes with the [@astrojs/mdx](https://docs.astro.build/en/guides/integrations-guide/mdx/) integration.
        {/* Comments are dropped. */}

        <HeaderLink href="/blog/first-post/">Components keep their **children**</HeaderLink>, see [the first post](./first-post.md).

        ```mdx
        import HeaderLink from './HeaderLink.astro';

        <HeaderLink href="#" onclick="alert('clicked!')">Embedded component in MDX</HeaderLink>
        ```
        """,
    "src/assets/blog-placeholder-3.jpg": b"\xff\xd8 placeholder three",
    "src/assets/blog-placeholder-5.jpg": b"\xff\xd8 placeholder five",
}


def test_astro_site_with_mdx_components_and_hero_images(tmp_path):
    import hashlib

    root = tmp_path / "astro"
    write(root, {**ASTRO, "config.yaml": config_yaml("https://ex.org", "src/content/blog", "/blog/{slug}/",
                                                      "astro")})
    proc, items = build(root)
    assert (proc.returncode, proc.stderr) == (0, "")
    mdx = items["https://ex.org/blog/using-mdx/"]
    assert mdx == (
        '<p>This theme comes with the <a href="https://docs.astro.build/en/guides/integrations-guide/mdx/">'
        "@astrojs/mdx</a> integration.</p>\n"
        '<p>Components keep their <strong>children</strong>, see '
        '<a href="https://ex.org/blog/first-post/">the first post</a>.</p>\n'
        '<pre><code class="language-mdx">import HeaderLink from \'./HeaderLink.astro\';\n\n'
        '&lt;HeaderLink href="#" onclick="alert(\'clicked!\')"&gt;Embedded component in MDX'
        "&lt;/HeaderLink&gt;\n</code></pre>")
    items_by_title = by_title(root)
    for title, name in (("Using MDX", "blog-placeholder-5.jpg"), ("First post", "blog-placeholder-3.jpg")):
        data = (root / "src/assets" / name).read_bytes()
        copy = f"media/{hashlib.sha256(data).hexdigest()[:12]}-{name}"
        assert items_by_title[title]["image"] == f"https://ex.org/{copy}"
        assert (root / "feeds" / copy).read_bytes() == data
    # The summary derived from an MDX body skips its import lines.
    assert items_by_title["Using MDX"]["summary"] == "This theme comes with the @astrojs/mdx integration."


ELEVENTY = {
    "eleventy.config.js": "export default function (eleventyConfig) {}\n",
    "posts/posts.json": '{"layout": "post.njk", "tags": ["posts"]}\n',
    "_data/metadata.json": '{"title": "Engine test", "author": {"name": "Ana"}}\n',
    "posts/2024-03-01-hello.md": """\
        ---
        title: Hello Eleventy
        date: 2024-03-01
        slug: hello-eleventy
        ---
        Welcome to {{ title }}, served from {{ site.url }} by {{ metadata.author.name }}.

        {% raw %}Nunjucks and Liquid both use {{ braces }}.{% endraw %}

        {% youtube "w7Ft2ymGmfc" %}

        Next: [the second post](./2024-03-08-second.md#intro).
        """,
    "posts/2024-03-08-second.md": """\
        ---
        title: Second
        date: 2024-03-08
        slug: second
        ---
        {% highlight "js" %}
        const x = `${1}`;
        {% endhighlight %}
        """,
}


def test_eleventy_site_with_liquid(tmp_path):
    root = tmp_path / "eleventy"
    write(root, {**ELEVENTY, "config.yaml": config_yaml("https://ex.org", "posts", "/posts/{slug}/",
                                                         "eleventy")})
    proc, items = build(root)
    assert proc.stderr == 'posts/2024-03-01-hello.md: unresolved engine syntax: {% youtube "w7Ft2ymGmfc" %}\n'
    assert items["https://ex.org/posts/hello-eleventy/"] == (
        '<p>Welcome to Hello Eleventy, served from <a href="https://ex.org">https://ex.org</a> by Ana.</p>\n'
        "<p>Nunjucks and Liquid both use {{ braces }}.</p>\n"
        '<p>Next: <a href="https://ex.org/posts/second/#intro">the second post</a>.</p>')
    assert items["https://ex.org/posts/second/"] == (
        '<pre><code class="language-js">const x = `${1}`;\n</code></pre>')


HUGO_COMPARED = """\
    ---
    title: First
    date: 2024-03-01T10:00:00Z
    series: Lakes
    ---
    {{< figure src="/images/banner.png" alt="Banner" title="Lake" caption="The lake at dawn" attr="Ana" attrlink="https://ana.example" >}}

    {{< figure src="/images/banner.png" link="https://ex.org/big.png" class="wide" width="300" >}}

    See {{< ref "posts/other.md" >}} and [rel]({{< relref "other" >}}), part of {{< param series >}}.

    {{< highlight go >}}
    x := 1
    {{< /highlight >}}
    """


def _normalized(fragment: str) -> str:
    """HTML as a reader sees it: whitespace between tags and runs of it collapsed, void tags
    without '/', URLs absolute."""
    from publisher.content.links import absolutize_html

    fragment = absolutize_html(fragment, "https://ex.org/posts/first/")
    fragment = re.sub(r"\s*/>", ">", fragment)
    fragment = re.sub(r">\s+<", "><", fragment)
    return re.sub(r"\s+", " ", fragment).strip()


@pytest.mark.skipif(__import__("shutil").which("hugo") is None, reason="hugo is not installed")
def test_shortcodes_publish_what_hugo_itself_publishes(tmp_path):
    """The same content folder built by Hugo (a layout printing .Content) and by publisher:
    the figures, the ref/relref/param paragraph and the highlighted code agree."""
    root = tmp_path / "hugo"
    write(root, {
        "hugo.toml": 'baseURL = "https://ex.org/"\ntitle = "T"\n',
        "layouts/_default/single.html": "{{ .Content }}\n",
        "static/images/banner.png": b"\x89PNG banner",
        "content/posts/first.md": HUGO_COMPARED,
        "content/posts/other.md": "---\ntitle: Other\ndate: 2024-02-01\n---\nHi.\n",
        "config.yaml": config_yaml("https://ex.org", "content", "/posts/{slug}/", "hugo"),
    })
    subprocess.run(["hugo", "--quiet"], cwd=root, check=True, capture_output=True, timeout=120)
    theirs = (root / "public/posts/first/index.html").read_text(encoding="utf-8")
    proc, items = build(root)
    assert (proc.returncode, proc.stderr) == (0, "")
    ours = items["https://ex.org/posts/first/"]

    def figures(text: str) -> list[str]:
        return [_normalized(f) for f in re.findall(r"<figure.*?</figure>", text, re.S)]

    assert figures(ours) == figures(theirs) == [
        '<figure><img src="https://ex.org/images/banner.png" alt="Banner"><figcaption><h4>Lake</h4>'
        '<p>The lake at dawn <a href="https://ana.example">Ana</a></p></figcaption></figure>',
        '<figure class="wide"><a href="https://ex.org/big.png"><img src="https://ex.org/images/banner.png"'
        ' width="300"></a></figure>']
    paragraph = re.compile(r"<p>See .*?</p>", re.S)
    # One known difference: Hugo pastes a {{< ref >}}'s URL in after rendering, so goldmark
    # never sees it, while ours goes through CommonMark + GFM, whose autolinking links it.
    def unlinked(text: str) -> str:
        return re.sub(r'<a href="([^"]+)">\1</a>', r"\1", text)

    assert (unlinked(_normalized(paragraph.search(ours).group(0)))
            == _normalized(paragraph.search(theirs).group(0)))

    def code_text(text: str) -> str:
        import html

        code = re.search(r'<code class="language-go"[^>]*>(.*?)</code>', text, re.S).group(1)
        return html.unescape(re.sub(r"<[^>]+>", "", code)).strip()

    assert code_text(ours) == code_text(theirs) == "x := 1"


def test_changing_the_dialect_rebuilds_the_feeds(tmp_path):
    root = tmp_path / "site"
    write(root, {"config.yaml": config_yaml("https://ex.org", "posts", "/{slug}/", "hugo"),
                 "posts/p.md": "---\ntitle: P\ndate: 2024-01-01\n---\nAt {{ site.url }}.\n"})
    _proc, items = build(root)
    assert items["https://ex.org/p/"] == "<p>At {{ site.url }}.</p>"  # Hugo leaves it alone
    write(root, {"config.yaml": config_yaml("https://ex.org", "posts", "/{slug}/", "jekyll")})
    _proc, items = build(root)
    assert items["https://ex.org/p/"] == '<p>At <a href="https://ex.org">https://ex.org</a>.</p>'


FRAGMENTS = ["{% raw %}", "{% endraw %}", "{{< x a=1 >}}", "{{< /x >}}", "{{% y %}}", "{{% /y %}}", "`", "```",
             "~~~", "\n", "\n\n", "text ", "{{ site.url }}", "{{ page.t }}", "<Foo a={1 > 0}>", "</Foo>",
             "<Bar />", "import X from 'y'\n", "export const a = {\n", "}\n", "{/* c */}", "    indented\n",
             "{% highlight go %}", "{% endhighlight %}", "{{< highlight go >}}", "{{< /highlight >}}",
             "{{</* z */>}}", "{% include a.html %}", "{{< figure src=\"a.png\" >}}", "{", "}", "\ue000", "\ue0000\ue001", "\ue0009\ue001",
             ":::note\n", ":::tip[T `x\"`]\n", "::::\n", ":::\n", "## H {#i .c}\n", "{: #k}\n", "---\n", "{:t=\"b\"}",
             "import c from './c.png'\n", "<img src={c.src} w={1} {...r}>", "\ue002"]


@pytest.mark.parametrize("dialect, mdx", [("auto", False), ("hugo", False), ("jekyll", False), ("astro", True),
                                          ("docusaurus", True), ("starlight", False)])
def test_any_mix_of_engine_syntax_resolves_without_error(dialect, mdx):
    """Generated bodies: resolving never raises, never leaves a placeholder of its own behind,
    and gives the same answer twice."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    @settings(max_examples=300, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join))
    def check(body):
        first = resolve(body, ctx(dialect=dialect, mdx=mdx))
        again = resolve(body, ctx(dialect=dialect, mdx=mdx))
        assert (first.text, first.unresolved) == (again.text, again.unresolved)
        assert first.text.count("\ue000") == body.count("\ue000")  # only the body's own
        if "\ue002" not in body:  # a heading's attributes, marked for add_heading_ids, never show
            from publisher.content.markup import render_body

            assert "\ue002" not in render_body(first.text)
        assert all("\n" not in name for name in first.unresolved)

    check()


# --- directives (admonitions) -----------------------------------------------------------

def rendered(text: str, context: SyntaxContext) -> tuple[str, list[str]]:
    """The body resolved, then rendered by the default Markdown engine, as a feed gets it."""
    from publisher.content.markup import render_body

    resolved = resolve(textwrap.dedent(text), context)
    return render_body(resolved.text), resolved.unresolved


ADMONITIONS = """\
    :::note
    Back up **first**.
    :::

    :::tip[Pick a name]
    A [link](https://ex.org/).
    :::

    :::danger Take care

    - one

    :::

    ::::info Outer
    Outer text.

    :::caution
    Inner text.
    :::
    ::::

    ```md
    :::note
    kept
    :::
    ```
    """


def test_docusaurus_admonitions_become_asides_with_the_engines_titles():
    html_text, unresolved = rendered(ADMONITIONS, ctx(dialect="docusaurus"))
    assert html_text == (
        '<aside class="admonition admonition-note" aria-label="Note">\n'
        '<p class="admonition-title"><strong>Note</strong></p>\n'
        "<p>Back up <strong>first</strong>.</p>\n</aside>\n"
        '<aside class="admonition admonition-tip" aria-label="Pick a name">\n'
        '<p class="admonition-title"><strong>Pick a name</strong></p>\n'
        '<p>A <a href="https://ex.org/">link</a>.</p>\n</aside>\n'
        '<aside class="admonition admonition-danger" aria-label="Take care">\n'
        '<p class="admonition-title"><strong>Take care</strong></p>\n'
        "<ul>\n<li>one</li>\n</ul>\n</aside>\n"
        '<aside class="admonition admonition-info" aria-label="Outer">\n'
        '<p class="admonition-title"><strong>Outer</strong></p>\n'
        "<p>Outer text.</p>\n"
        '<aside class="admonition admonition-caution" aria-label="Caution">\n'
        '<p class="admonition-title"><strong>Caution</strong></p>\n'
        "<p>Inner text.</p>\n</aside>\n</aside>\n"
        '<pre><code class="language-md">:::note\nkept\n:::\n</code></pre>\n')
    assert unresolved == []


def test_starlight_asides_and_a_type_it_does_not_have():
    html_text, unresolved = rendered("""\
        :::note[Heads up]
        Text.
        :::

        :::warning
        Body kept.
        :::
        """, ctx(dialect="starlight"))
    assert html_text == (
        '<aside class="admonition admonition-note" aria-label="Heads up">\n'
        '<p class="admonition-title"><strong>Heads up</strong></p>\n'
        "<p>Text.</p>\n</aside>\n<p>Body kept.</p>\n")
    assert unresolved == [":::warning"]


@pytest.mark.parametrize("dialect", ["astro", "hugo", "jekyll", "eleventy"])
def test_engines_without_admonitions_leave_the_colons_as_text(dialect):
    text, unresolved = run(":::note\nText.\n:::\n", ctx(dialect=dialect))
    assert (text, unresolved) == (":::note\nText.\n:::\n", [])


def test_an_unclosed_admonition_closes_at_the_end_and_a_stray_fence_is_named():
    html_text, unresolved = rendered(":::\nbefore\n\n:::tip\nopen to the end\n", ctx(dialect="docusaurus"))
    assert html_text == ('<p>before</p>\n<aside class="admonition admonition-tip" aria-label="Tip">\n'
                         '<p class="admonition-title"><strong>Tip</strong></p>\n'
                         "<p>open to the end</p>\n</aside>\n")
    assert unresolved == [":::"]


# --- heading attributes -----------------------------------------------------------------

HEADINGS = """\
    ## Install {#install}

    ## Install

    ## Styled *heading* {.wide #styled}

    Setext {#setext}
    ----------------

    ```
    ## In code {#kept}
    ```
    """


@pytest.mark.parametrize("dialect", ["auto", "hugo", "jekyll", "zola", "docusaurus", "pelican"])
def test_heading_attributes_set_the_id_and_never_show(dialect):
    html_text, unresolved = rendered(HEADINGS, ctx(dialect=dialect))
    assert html_text == (
        '<h2 id="install">Install</h2>\n<h2 id="install-1">Install</h2>\n'
        '<h2 id="styled" class="wide">Styled <em>heading</em></h2>\n<h2 id="setext">Setext</h2>\n'
        "<pre><code>## In code {#kept}\n</code></pre>\n")
    assert unresolved == []


@pytest.mark.parametrize("dialect", ["astro", "eleventy"])
def test_engines_without_heading_attributes_print_the_braces(dialect):
    html_text, _ = rendered("## Install {#install}\n", ctx(dialect=dialect))
    assert html_text == '<h2 id="install-install">Install {#install}</h2>\n'


def test_kramdown_block_and_span_attribute_lists():
    html_text, unresolved = rendered("""\
        ## Install
        {: #setup .big}

        A lead paragraph.
        {: .lead}

        Open [the docs](https://ex.org/){:target="_blank"} now.
        """, ctx(dialect="jekyll"))
    assert html_text == ('<h2 id="setup" class="big">Install</h2>\n<p>A lead paragraph.</p>\n'
                         '<p>Open <a href="https://ex.org/">the docs</a> now.</p>\n')
    assert unresolved == []


def test_heading_ids_with_python_markdown():
    from publisher.content.markup import render_body

    class Content:
        markdown, markdown_extensions = "python-markdown", ()

    class Config:
        content, path = Content(), "config.yaml"

    text = resolve("## Install {#install}\n\n## Install\n", ctx(dialect="pelican")).text
    assert render_body(text, Config()) == '<h2 id="install">Install</h2>\n<h2 id="install-1">Install</h2>'


# --- MDX attributes ---------------------------------------------------------------------

def test_mdx_attribute_expressions_resolve_to_constants_and_imported_files():
    text, unresolved = run("""\
        import cover from './cover.png';
        import data from '../data.json';

        <img src={cover} width={600} alt="A" />
        <img src={cover.src} height={'40'} className="round" hidden={true} loading={false} />
        <img src={data.url} {...rest} alt={`tpl`} />
        """, ctx(dialect="astro", mdx=True))
    assert text == ('\n<img src="./cover.png" width="600" alt="A" />\n'
                    '<img src="./cover.png" height="40" class="round" hidden />\n'
                    '<img alt="tpl" />\n')
    assert unresolved == ["src={data.url}", "{...rest}"]


def test_docusaurus_reads_md_files_as_mdx():
    from publisher.content.syntax import is_mdx

    assert is_mdx("blog/x.md", "docusaurus") and is_mdx("blog/x.mdx", "astro")
    assert not is_mdx("blog/x.md", "astro") and not is_mdx("blog/x.md", "auto")


# --- the fixture sites of the engines with these syntaxes -------------------------------

SYNTAX_SITES = Path(__file__).parent / "fixtures" / "syntax"


def syntax_site(tmp_path: Path, engine: str, url: str, content_dir: str, permalink: str) -> Path:
    import shutil

    root = tmp_path / engine
    shutil.copytree(SYNTAX_SITES / engine, root)
    write(root, {"config.yaml": config_yaml(url, content_dir, permalink, engine)})
    return root


def assert_no_directive_leaks(root: Path) -> None:
    for name in ("rss.xml", "atom.xml", "feed.json"):
        text = re.sub(r"(<|&lt;)code.*?(<|&lt;)/code", "", (root / "feeds" / name).read_text(encoding="utf-8"),
                      flags=re.S)
        for leak in (":::", "{#", "={", "@/"):
            assert leak not in text, f"{name}: {leak!r} leaked"


def test_docusaurus_blog_admonitions_mdx_in_md_and_an_imported_image(tmp_path):
    root = syntax_site(tmp_path, "docusaurus", "https://docs.example.org", "blog",
                       "/blog/{year}/{month}/{day}/{slug}/")
    proc, items = build(root)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [
        "blog/2024-03-05-cover/index.md: unresolved engine syntax: src={require('./cover.png').default}",
        "blog/2024-03-01-admonitions.md: unresolved engine syntax: :::spoiler"]
    assert_no_directive_leaks(root)
    release = items["https://docs.example.org/blog/2024/03/01/admonitions/"]
    assert '<h2 id="before-upgrading">Before you upgrade</h2>' in release
    titles = re.findall(r'<aside class="admonition admonition-(\w+)" aria-label="[^"]*">\s*'
                        r'<p class="admonition-title"><strong>([^<]*)</strong></p>', release)
    assert titles == [("note", "Note"), ("tip", "Faster installs"), ("danger", "Breaking change"),
                      ("info", "Nested callouts"), ("caution", "Caution")]
    assert "<p>Back up the <strong>database</strong> first.</p>" in release
    assert "<li>the <code>--legacy</code> flag is gone</li>" in release
    assert ":::note\nA fence inside code stays as written.\n:::" in release  # in its code block
    assert "<p>A type Docusaurus does not know.</p>" in release
    cover = items["https://docs.example.org/blog/2024/03/05/cover/"]
    media = re.findall(r'src="https://docs\.example\.org/(media/[0-9a-f]{12}-cover\.png)"', cover)
    assert len(media) == 2 and media[0] == media[1]
    assert (root / "feeds" / media[0]).read_bytes() == (root / "blog/2024-03-05-cover/cover.png").read_bytes()
    assert 'width="600" alt="The cover"' in cover and 'height="40" alt="Small cover"' in cover
    assert '<img alt="Required">' in cover


def test_starlight_asides_through_a_build(tmp_path):
    root = syntax_site(tmp_path, "starlight", "https://guide.example.org", "src/content/docs", "/{slug}/")
    proc, items = build(root)
    assert proc.stderr == "src/content/docs/blog/asides.md: unresolved engine syntax: :::warning\n"
    assert_no_directive_leaks(root)
    body = items["https://guide.example.org/blog/asides/"]
    assert re.findall(r'aria-label="([^"]+)"', body) == ["Note", "Mind the gap", "Tip", "Danger"]
    assert "<p>Between the <em>train</em> and the platform.</p>" in body
    assert "<p>Starlight has no warning aside.</p>" in body


def test_zola_internal_links_become_the_posts_urls(tmp_path):
    root = syntax_site(tmp_path, "zola", "https://zola.example.org", "content", "/{path}/")
    proc, items = build(root)
    assert (proc.returncode, proc.stderr) == (0, "")
    assert_no_directive_leaks(root)
    first = items["https://zola.example.org/blog/first/"]
    assert re.findall(r'href="([^"]+)"', first) == [
        "https://zola.example.org/blog/second/", "https://zola.example.org/blog/second/#details",
        "https://zola.example.org/blog/third/"]
    assert '<h2 id="part-one">Part one</h2>' in first
    assert ('<a href="https://zola.example.org/blog/first/#part-one">the first</a>'
            in items["https://zola.example.org/blog/second/"])


def test_hugo_html_content_is_a_post_published_as_it_is(tmp_path):
    root = syntax_site(tmp_path, "hugo", "https://hugo.example.org", "content", "/{path}/")
    proc, items = build(root)
    assert (proc.returncode, proc.stderr) == (0, "")
    assert sorted(items) == ["https://hugo.example.org/posts/headings/",
                             "https://hugo.example.org/posts/written-in-html/"]  # _index.html: no post
    page = by_title(root)["A page written in HTML"]
    assert page["content_html"] == ("<p>Written in <em>HTML</em>, and published as it is.</p>\n"
                                    "<h2>A heading Hugo gives no id</h2>\n<ul>\n  <li>first</li>\n"
                                    "  <li>second</li>\n</ul>")
    assert page["summary"] == "Written in HTML, and published as it is."
    assert page["tags"] == ["html"]


def test_shortcodes_in_indented_html_content_are_resolved():
    """In an .html content file an indented line is HTML, not a code block."""
    text, unresolved = run("""\
        <ul>

            <li>See {{< ref "posts/other.md" >}}</li>
        </ul>
        """, SyntaxContext("https://ex.org", dialect="hugo", fmt="html",
                           post_link=lambda kind, target: POSTS.get(f"{kind}:{target}")))
    assert (text, unresolved) == ("<ul>\n\n    <li>See https://ex.org/posts/other/</li>\n</ul>\n", [])


def test_an_html_file_is_no_post_for_other_engines(tmp_path):
    root = syntax_site(tmp_path, "hugo", "https://hugo.example.org", "content", "/{path}/")
    write(root, {"config.yaml": config_yaml("https://hugo.example.org", "content", "/{path}/", "auto")})
    _proc, items = build(root)
    assert sorted(items) == ["https://hugo.example.org/posts/headings/"]


@pytest.mark.skipif(__import__("shutil").which("hugo") is None and os.environ.get("CI") != "true",
                    reason="hugo is not installed")
def test_heading_ids_and_html_content_are_what_hugo_publishes(tmp_path):
    """The fixture built by Hugo itself (a layout printing .Content) and by publisher: the
    headings, ids and classes included, and the .html page's body agree."""
    root = syntax_site(tmp_path, "hugo", "https://hugo.example.org", "content", "/{path}/")
    subprocess.run(["hugo", "--quiet"], cwd=root, check=True, capture_output=True, timeout=120)
    proc, items = build(root)
    assert (proc.returncode, proc.stderr) == (0, "")

    def headings(text: str) -> list[tuple[list[str], str]]:  # (attributes in any order, text)
        return [(sorted(re.findall(r'\w+="[^"]*"', attrs)), inner)
                for attrs, inner in re.findall(r"<h2([^>]*)>(.*?)</h2>", text)]

    theirs = (root / "public/posts/headings/index.html").read_text(encoding="utf-8")
    ours = items["https://hugo.example.org/posts/headings/"]
    assert headings(ours) == headings(theirs)
    assert [attrs for attrs, _text in headings(theirs)] == [
        ['id="install"'], ['id="install-the-tools"'], ['class="wide"', 'id="styled"'], ['id="setext"'],
        ['id="plain-heading"']]
    theirs_html = (root / "public/posts/written-in-html/index.html").read_text(encoding="utf-8")
    assert _normalized(items["https://hugo.example.org/posts/written-in-html/"]) == _normalized(theirs_html)


@pytest.mark.skipif(__import__("shutil").which("jekyll") is None, reason="jekyll is not installed")
def test_kramdown_heading_ids_are_what_jekyll_publishes(tmp_path):
    """The fixture built by Jekyll itself (kramdown, a layout printing {{ content }}) and by
    publisher: every heading's id and class agree, and no attribute list shows."""
    root = syntax_site(tmp_path, "jekyll", "https://jekyll.example.org", "_posts", "/{year}/{month}/{day}/{slug}/")
    subprocess.run(["jekyll", "build", "--quiet"], cwd=root, check=True, capture_output=True, timeout=300)
    proc, items = build(root)
    assert (proc.returncode, proc.stderr) == (0, "")
    assert_no_directive_leaks(root)

    def headings(text: str) -> list[tuple[list[str], str]]:
        return [(sorted(re.findall(r'\w+="[^"]*"', attrs)), inner)
                for attrs, inner in re.findall(r"<h2([^>]*)>(.*?)</h2>", text)]

    theirs = (root / "_site/2024/02/01/headings/index.html").read_text(encoding="utf-8")
    ours = items["https://jekyll.example.org/2024/02/01/headings/"]
    assert headings(ours) == headings(theirs)
    assert [attrs for attrs, _text in headings(theirs)] == [
        ['id="install"'], ['id="install-the-tools"'], ['class="wide"', 'id="styled"'], ['id="setext"']]
    assert "{:" not in ours and "<p>A lead paragraph.</p>" in ours
    # a span IAL broken over two lines (`[a][r]{:\ntarget="_blank"}`) is kramdown's too: ruby-lang.org's
    # posts showed `{: target="_blank"}` as text
    assert "{:" not in theirs and 'a line: <a href="https://docs.example.org/archive/"' in theirs
    assert re.search(r'a line: <a href="https://docs.example.org/archive/"[^>]*>the archive</a> and '
                     r'<a href="https://docs.example.org/archive/"><img [^>]*></a> a cover.', ours)


def test_mdx_escaped_braces_are_text_not_an_expression():
    """Docusaurus shows `\\{auto,off\\}` as {auto,off}: MDX's (and Markdown's) escape, which
    publisher took for the start of an expression and dropped with the rest of the line."""
    text, unresolved = run(
        "## Add --embedded-language-formatting=\\{auto,off\\} option\n\nAnd {expr} \\\\{x}.\n",
        ctx(dialect="docusaurus", mdx=True))
    assert text == "## Add --embedded-language-formatting=\\{auto,off\\} option\n\nAnd  \\\\.\n"
    assert unresolved == ["{expr}", "{x}"]


def test_remark_text_directives_keep_their_text_and_a_containers_label_stays():
    """remark-directive's `:quote[text]{#id}` (a site's own plugin) keeps its text, its
    attributes dropped and named; an unknown container's [label] is its title, kept."""
    text, unresolved = run("""\
        As I said, :quote[decisions need a URL]{#decision-without-a-url} and :name[plain].
        At 10:30[1] a:b[0] and [a link](x) stay.

        :::objection[Won't I look like I'm bragging?]
        No.
        :::
        """)
    assert text == textwrap.dedent("""\
        As I said, decisions need a URL and plain.
        At 10:30[1] a:b[0] and [a link](x) stay.


        <p><strong>Won't I look like I'm bragging?</strong></p>

        No.

        """)
    assert unresolved == [":quote[decisions need a URL]{#decision-without-a-url}", ":name[plain]", ":::objection"]


PELICAN_POST = """\
    Title: Animations
    Date: 2012-08-18 10:00

    A figure: {% img /images/galaxy.jpg 300 200 A Galaxy %}

    {% img left /figures/hist.png [Simple Histogram] %}
    {% img https://ex.org/a.png "Its title" "Its alt" %}

    {% video /downloads/videos/basic_animation.mp4 360 270 /downloads/videos/frame.png %}

    {% notebook Myths.ipynb cells[2:] %}

    `{% img /in/code.png %}` stays.
    """


@pytest.mark.parametrize("plugins", [
    "['summary', 'liquid_tags.img', 'liquid_tags.video',\n           'liquid_tags.notebook']",
    "['pelican.plugins.liquid_tags']", None])
def test_pelican_liquid_tags_img_resolved_the_rest_dropped_and_named(tmp_path, plugins):
    """With liquid_tags in pelicanconf.py's PLUGINS, `{% img %}` is the plugin's <img> and the
    other tags (notebook, video) are dropped and named; without it Pelican shows the tags as
    written, and each is named too: no `{% ... %}` reaches a feed without a warning line."""
    root = tmp_path / "pelican"
    files = {"config.yaml": config_yaml("https://pel.example.org", "content", "/{slug}.html", "pelican"),
             "content/animations.md": PELICAN_POST}
    if plugins:
        files["pelicanconf.py"] = f"AUTHOR = 'x'\nPLUGINS = {plugins}\n"
    write(root, files)
    proc, items = build(root, shown=() if plugins else ("{%",))
    assert proc.returncode == 0, proc.stderr
    html_text = items["https://pel.example.org/animations.html"]
    named = ("{% video /downloads/videos/basic_animation.mp4 360 270 /downloads/videos/fram..., "
             "{% notebook Myths.ipynb cells[2:] %}")  # (a name is cut at 80 characters)
    if plugins:
        assert ('<img src="https://pel.example.org/images/galaxy.jpg" width="300" height="200" '
                'title="A Galaxy" alt="A Galaxy">') in html_text
        assert '<img class="left" src="https://pel.example.org/figures/hist.png" title="[Simple Histogram]"' in html_text
        assert '<img src="https://ex.org/a.png" title="Its title" alt="Its alt">' in html_text
        assert "notebook" not in html_text and "video" not in html_text
        assert f"content/animations.md: unresolved engine syntax: {named}" in proc.stderr
    else:
        assert "{% img /images/galaxy.jpg 300 200 A Galaxy %}" in html_text
        assert "content/animations.md: unresolved engine syntax: {% img /images/galaxy.jpg 300 200 A Galaxy %}" in proc.stderr
    assert "<code>{% img /in/code.png %}</code>" in html_text


def test_hexo_tag_plugins_asset_images_code_blocks_and_a_themes_note(tmp_path):
    """With post_asset_folder, `{% asset_img %}` is the image in the post's asset folder (its
    file name without extension); codeblock/code are fenced code of their language; a theme's
    `{% note %}` is dropped and named, its text kept; a tag inside code stays as written."""
    root = tmp_path / "hexo"
    write(root, {
        "config.yaml": config_yaml("https://hexo.example.org", "source/_posts",
                                   "/news/{year}/{month}/{day}/{slug}/", "hexo"),
        "_config.yml": "post_asset_folder: true\nnew_post_name: :year-:month-:day-:title.md\n",
        "source/_posts/2014-07-13-released.md": """\
            ---
            title: Released
            ---
            {% asset_img console.png "The console" "A console" %}

            Download it from [here]({% asset_path console.png %}) or {% asset_link console.png the file %}.

            {% codeblock build.js lang:js %}
            const x = `{% not a tag %}`;
            {% endcodeblock %}

            {% note warn %}
            Mind the **gap**.
            {% endnote %}

            `{% asset_img in-code.png %}` stays.
            """,
        "source/_posts/2014-07-13-released/console.png": b"\x89PNG hexo",
    })
    proc, items = build(root)
    assert proc.returncode == 0, proc.stderr
    text = items["https://hexo.example.org/news/2014/07/13/released/"]
    image = re.search(r'<img src="(https://hexo.example.org/media/[0-9a-f]{12}-console.png)" alt="A console" '
                      r'title="The console">', text)
    assert image, text
    assert f'<a href="{image.group(1)}">here</a>' in text and f'<a href="{image.group(1)}">the file</a>' in text
    assert '<code class="language-js">const x = `{% not a tag %}`;' in text
    assert "Mind the <strong>gap</strong>." in text and "note" not in text
    assert "<code>{% asset_img in-code.png %}</code>" in text
    assert "source/_posts/2014-07-13-released.md: unresolved engine syntax: {% note warn %}" in proc.stderr


# --- directives a site's own Markdown plugins add (read from the engine's config) ----------------

def test_starlight_text_after_an_asides_label_is_no_aside():
    """remark-directive opens a container only on a line of its own (`:::name[label]{attrs}`,
    nothing after): `:::caution[Heads up] If you...` is a paragraph, shown as written, as
    Starlight shows it (nothing of it lost)."""
    html_text, unresolved = rendered("""\
        :::caution[Heads up] If you used the beta,
        the setting is gone. :::

        After.
        """, ctx(dialect="starlight"))
    assert html_text == ("<p>:::caution[Heads up] If you used the beta,\nthe setting is gone. :::</p>\n"
                         "<p>After.</p>\n")
    assert unresolved == []


ASTRO_DIRECTIVES = {
    "astro.config.mjs": """\
        import { defineConfig } from "astro/config";
        import remarkDirective from "remark-directive";
        import remarkGithubAdmonitionsToDirectives from "remark-github-admonitions-to-directives";
        export default defineConfig({
          site: "https://astro.example.org",
          markdown: { remarkPlugins: [remarkGithubAdmonitionsToDirectives, remarkDirective] },
        });
        """,
    "src/content/posts/asides.md": """\
        ---
        title: Asides
        published: 2024-05-01
        ---
        :::note
        Skim this.
        :::

        :::tip[Own title]
        A tip.
        :::

        > [!WARNING]
        > Mind the gap.

        ::github{repo="someone/something"}

        After.
        """,
}


def test_astro_site_with_remark_directive_resolves_its_directives(tmp_path):
    """An Astro site whose astro.config lists remark-directive (Fuwari and other themes) has
    its container directives rendered by its own components: asides here, their label as
    the title; GitHub's `> [!WARNING]` becomes one too where the config turns them into
    directives; a leaf directive (`::github{...}`, a theme's card) is dropped and named."""
    root = tmp_path / "astro"
    write(root, {**ASTRO_DIRECTIVES,
                 "config.yaml": config_yaml("https://astro.example.org", "src/content/posts", "/posts/{slug}/", "astro")})
    proc, items = build(root)
    assert proc.stderr == 'src/content/posts/asides.md: unresolved engine syntax: ::github{repo="someone/something"}\n'
    assert_no_directive_leaks(root)
    body = items["https://astro.example.org/posts/asides/"]
    assert re.findall(r'aria-label="([^"]+)"', body) == ["Note", "Own title", "Warning"]
    assert "<p>Mind the gap.</p>" in body and "[!WARNING]" not in body
    assert "::github" not in body and "<p>After.</p>" in body


def test_astro_7_satteri_with_directives_resolves_them(tmp_path):
    """Astro 7's satteri processor turns directives on with `features: { directive: true }`
    (astro-theme-cactus): the same asides as with remark-directive."""
    root = tmp_path / "astro"
    files = dict(ASTRO_DIRECTIVES)
    files["astro.config.mjs"] = (
        'import { defineConfig } from "astro/config";\nimport { satteri } from "@astrojs/markdown-satteri";\n'
        "export default defineConfig({\n  markdown: { processor: satteri({ features: { directive: true } }) },\n});\n")
    write(root, {**files,
                 "config.yaml": config_yaml("https://astro.example.org", "src/content/posts", "/posts/{slug}/", "astro")})
    proc, items = build(root)
    assert proc.stderr == 'src/content/posts/asides.md: unresolved engine syntax: ::github{repo="someone/something"}\n'
    body = items["https://astro.example.org/posts/asides/"]
    assert re.findall(r'aria-label="([^"]+)"', body) == ["Note", "Own title"]  # no GitHub-alert plugin here


def test_astro_site_without_remark_directive_shows_the_colons(tmp_path):
    root = tmp_path / "astro"
    files = dict(ASTRO_DIRECTIVES)
    files["astro.config.mjs"] = 'import { defineConfig } from "astro/config";\nexport default defineConfig({});\n'
    write(root, {**files,
                 "config.yaml": config_yaml("https://astro.example.org", "src/content/posts", "/posts/{slug}/", "astro")})
    proc, items = build(root)
    assert proc.stderr == ""
    body = items["https://astro.example.org/posts/asides/"]
    assert "<p>:::note\nSkim this.\n:::</p>" in body and "[!WARNING]" in body


def test_eleventy_markdown_it_container_blocks(tmp_path):
    """An Eleventy site that adds markdown-it-container to its markdown-it (`md.use(
    markdownItContainer, 'note')`) gets `<div class="note">` around the block, as that
    plugin renders it; a container the site renders its own way (a `render` function:
    v8.dev's figure) keeps its body and is named; an unregistered name stays text."""
    root = tmp_path / "eleventy"
    write(root, {
        ".eleventy.js": """\
            const markdownIt = require('markdown-it');
            const markdownItContainer = require('markdown-it-container');
            const md = markdownIt({ html: true })
              .use(markdownItContainer, 'note')
              .use(markdownItContainer, "table-wrapper")
              .use(markdownItContainer, 'figure', {
                validate(params) { return params.trim().match(/^figure\\s+(.*)$/); },
                render(tokens, idx) { return tokens[idx].nesting === 1 ? '<figure>\\n' : '</figure>\\n'; },
              });
            module.exports = (eleventyConfig) => { eleventyConfig.setLibrary('md', md); };
            """,
        "src/blog/containers.md": """\
            ---
            title: Containers
            date: 2024-05-01
            ---
            ::: note
            All scores were **measured** on one machine.
            :::

            :::table-wrapper
            | a | b |
            |---|---|
            | 1 | 2 |
            :::

            ::: figure Median improvement.
            ![chart](https://img.example.org/chart.svg)
            :::

            :::aside
            Not registered.
            :::
            """,
        "config.yaml": config_yaml("https://v8.example.org", "src/blog", "/blog/{slug}/", "eleventy")})
    proc, items = build(root)
    assert proc.stderr == "src/blog/containers.md: unresolved engine syntax: ::: figure Median improvement.\n"
    body = items["https://v8.example.org/blog/containers/"]
    assert '<div class="note">\n<p>All scores were <strong>measured</strong> on one machine.</p>\n</div>' in body
    assert '<div class="table-wrapper">\n<table>' in body
    assert '<img src="https://img.example.org/chart.svg" alt="chart"' in body and "::: figure" not in body
    assert "<p>:::aside\nNot registered.\n:::</p>" in body


def test_zola_shortcodes_are_dropped_kept_or_shown_as_zola_would():
    """Zola's shortcodes are the site's Tera templates: an inline one is dropped and named, one
    naming an image file is that image; a body one keeps its body (named); an escaped one
    (`{{/* x() */}}`) shows as written; in code, nothing is touched."""
    text, unresolved = run("""\
        Before {{ youtube(id="dQw4w9WgXcQ") }} after.

        {{ dual_theme_image(light_src="img/plan-light.webp", dark_src="img/plan-dark.webp", alt="The plan") }}

        {% aside(position="right") %}
        Did you **know**?
        {% end %}

        Write {{/* image(src="x.png") */}} to show one.

        `{{ kept() }}`
        """, ctx(dialect="zola"))
    assert text == ("Before  after.\n\n![The plan](<img/plan-light.webp>)\n\n\nDid you **know**?\n\n\n"
                    'Write {{ image(src="x.png") }} to show one.\n\n`{{ kept() }}`\n')
    assert unresolved == ['{{ youtube(id="dQw4w9WgXcQ") }}', '{% aside(position="right") %}']


@pytest.mark.parametrize("dialect", ["eleventy", "jekyll"])
def test_an_image_shortcode_naming_an_image_file_is_that_image(dialect):
    """`{% image "./images/desk.jpg", "My desk" %}` (the shortcode Eleventy's Image plugin
    documents) is the picture, as Markdown, for the post's own image handling; another tag
    is still dropped and named."""
    text, unresolved = run('A {% image "./images/desk.jpg", "My desk" %} and {% youtube "abc" %}.\n',
                           ctx(dialect=dialect))
    assert (text, unresolved) == ("A ![My desk](<./images/desk.jpg>) and .\n", ['{% youtube "abc" %}'])


def test_a_fence_left_open_in_a_list_item_ends_with_the_item():
    """A fence opened inside a list item and never closed ends where the item ends (CommonMark;
    the renderer closes it there): what follows is prose, its Liquid resolved or named, never
    shown as text (ruby-lang.org's de/news/2020-12-08-ruby-3-0-0-preview2-released.md showed
    `{% assign release = ... %}` and six `{{ release.stats... }}` in its feed)."""
    html_text, unresolved = rendered("""\
        * Arguments:
          * Forwarding now takes leading
            arguments.
            ``` ruby
            def method_missing(meth, ...)
              send(:"do_#{ meth }", ...)
            end

        * `$SAFE` is gone.```

        {% assign release = site.data.releases | first %}

        With [{{ release.stats.files_changed }} files changed](https://ex.org/compare)!
        """, ctx(dialect="jekyll"))
    assert "{%" not in html_text and "{{" not in html_text
    assert '<code class="language-ruby">def method_missing(meth, ...)' in html_text
    assert unresolved == ["{% assign release = site.data.releases | first %}", "{{ release.stats.files_changed }}"]


def test_liquid_assign_with_where_and_first_from_the_sites_data_folder(tmp_path):
    """ruby-lang.org's release posts: `{% assign release = site.data.releases | where:
    "version", "3.0.0" | first %}`, then `{{ release.url.gz }}`... from _data/releases.yml, as
    Jekyll fills them (publisher dropped the download links and checksums of 925 posts)."""
    from publisher.content.links import _site_variables

    (tmp_path / "_config.yml").write_text("title: T\n", encoding="utf-8")
    (tmp_path / "_data" / "locales").mkdir(parents=True)
    (tmp_path / "_data" / "releases.yml").write_text(
        "- version: 3.0.0\n  url: {gz: https://ex.org/3.0.0.tgz}\n  stats: {files_changed: 4}\n"
        "- version: 2.7\n  url: {gz: https://ex.org/2.7.tgz}\n", encoding="utf-8")
    (tmp_path / "_data" / "locales" / "en.yml").write_text("news: {title: News}\n", encoding="utf-8")
    variables, read = _site_variables(str(tmp_path), "jekyll", (str(tmp_path),))
    assert variables["site"]["data"]["locales"]["en"] == {"news": {"title": "News"}}
    context = SyntaxContext(site_url="https://ex.org", dialect="jekyll", variables=variables)
    text, unresolved = run(
        '{% assign release = site.data.releases | where: "version", "3.0.0" | first %}\n'
        "[{{ release.stats.files_changed }} files]({{ release.url.gz }}), {{ site.data.locales.en.news.title }}\n"
        '{% assign release = site.data.releases | where: "version", "2.7" | first %}\n'
        "{{ release.url.gz }} {{ release.stats.files_changed }}\n"
        '{% assign other = site.data.releases | sort: "version" %}{{ other.first }}\n', context)
    assert text == ("\n[4 files](https://ex.org/3.0.0.tgz), News\n\nhttps://ex.org/2.7.tgz \n\n")
    assert unresolved == ["{{ release.stats.files_changed }}", '{% assign other = site.data.releases | sort: "version" %}',
                          "{{ other.first }}"]
