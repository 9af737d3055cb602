"""content/syntax.py: Liquid, Hugo shortcodes and MDX resolved before Markdown, never in code;
and, through `publisher build` writing real feeds, one small site per engine in its own layout."""

from __future__ import annotations

import json
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
             "{{</* z */>}}", "{% include a.html %}", "{{< figure src=\"a.png\" >}}", "{", "}", "\ue000", "\ue0000\ue001", "\ue0009\ue001"]


@pytest.mark.parametrize("dialect, mdx", [("auto", False), ("hugo", False), ("jekyll", False), ("astro", True)])
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
        assert all("\n" not in name for name in first.unresolved)

    check()
