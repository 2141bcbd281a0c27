"""Help-centre HTML pages to Markdown-like text: main content, headings and links kept; scripts,
navigation and boilerplate dropped (stdlib parser, so odd markup degrades instead of failing)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin

# Subtrees that never hold article text.
DROP_TAGS = {"script", "style", "noscript", "template", "svg", "nav", "form", "button", "iframe", "select",
             "aside", "head", "dialog", "canvas", "object"}
# Page chrome: dropped unless they sit inside the main content.
CHROME_TAGS = {"header", "footer"}
DROP_ROLES = {"navigation", "banner", "contentinfo", "search", "complementary", "dialog", "alert"}
DROP_CLASS = re.compile(
    r"(^|[\s_-])(nav|navbar|menu|breadcrumbs?|footer|sidebar|cookies?|consent|skip|social|share|"
    r"related|newsletter|pagination|toc|advert|ads?)($|[\s_-])", re.I
)
MAIN_TAGS = {"main", "article"}
BLOCK_TAGS = {"p", "div", "section", "ul", "ol", "table", "tr", "blockquote", "pre", "dl", "dt", "dd",
              "figure", "figcaption", "details", "summary", "hr", "main", "article", "header", "footer", "body"}
VOID_TAGS = {"br", "img", "hr", "meta", "link", "input", "source", "wbr", "col", "area", "base", "embed"}
TITLE_SUFFIX = re.compile(r"\s+[|–—-]\s+[^|–—-]{1,60}$")


@dataclass
class Page:
    title: str = ""
    url: str = ""
    tags: list[str] = field(default_factory=list)
    text: str = ""  # Markdown-like: '# heading' lines, paragraphs separated by blank lines


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self.stack: list[tuple[str, bool, bool]] = []  # (tag, dropped, main)
        self.blocks: list[tuple[bool, str]] = []  # (inside main content, text)
        self.line: list[str] = []
        self.prefix = ""
        self.href: str | None = None
        self.link_text: list[str] = []
        self.in_title = False
        self.title_parts: list[str] = []
        self.first_h1 = ""
        self.in_h1 = False
        self.h1_parts: list[str] = []
        self.saw_main = False

    @property
    def dropped(self) -> bool:
        return bool(self.stack) and self.stack[-1][1]

    @property
    def in_main(self) -> bool:
        return bool(self.stack) and self.stack[-1][2]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "title":
            self.in_title = True
        elif tag == "link" and "canonical" in a.get("rel", "").lower().split():
            self.page.url = self.page.url or a.get("href", "")
        elif tag == "meta":
            name = (a.get("name") or a.get("property") or "").lower()
            if name == "og:url" and not self.page.url:
                self.page.url = a.get("content", "")
            elif name in ("keywords", "article:section", "article:tag", "category"):
                self.page.tags += [t.strip() for t in a.get("content", "").split(",") if t.strip()]
        if tag == "h1":
            self.in_h1, self.h1_parts = True, []
        if tag in VOID_TAGS:
            if tag == "br" and not self.dropped:
                self._flush()
            elif tag == "img" and not self.dropped and a.get("alt"):
                self.line.append(a["alt"])
            return
        main = self.in_main or tag in MAIN_TAGS or a.get("role") == "main"
        self.saw_main |= main
        drop = self.dropped or tag in DROP_TAGS or a.get("role", "") in DROP_ROLES or a.get("aria-hidden") == "true"
        drop = drop or (tag in CHROME_TAGS and not self.in_main)
        drop = drop or bool(DROP_CLASS.search(f"{a.get('class', '')} {a.get('id', '')}")) and tag not in MAIN_TAGS
        self.stack.append((tag, drop, main))
        if drop:
            return
        if tag in BLOCK_TAGS or re.fullmatch(r"h[1-6]", tag) or tag == "li":
            self._flush()
        if re.fullmatch(r"h[1-6]", tag):
            self.prefix = "#" * int(tag[1]) + " "
        elif tag == "li":
            self.prefix = "- "
        elif tag in ("td", "th") and self.line:
            self.line.append(" | ")
        elif tag == "a":
            self.href, self.link_text = a.get("href", ""), []

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
        if tag == "h1" and self.in_h1:
            self.in_h1 = False
            self.first_h1 = self.first_h1 or " ".join("".join(self.h1_parts).split())
        if tag in VOID_TAGS or not any(t == tag for t, _, _ in self.stack):
            return
        while self.stack:
            open_tag, drop, _ = self.stack.pop()
            if open_tag == tag:
                break
        if drop:
            return
        if tag == "a" and self.href is not None:
            text = " ".join("".join(self.link_text).split())
            url = urljoin(self.page.url, self.href) if self.page.url else self.href
            if text and re.match(r"(https?:|mailto:)", url) and url.rstrip("/") != text.rstrip("/"):
                self.line.append(f" ({url})")
            self.href = None
        if tag in BLOCK_TAGS or re.fullmatch(r"h[1-6]", tag) or tag == "li":
            self._flush()

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title_parts.append(data)
        if self.in_h1:
            self.h1_parts.append(data)
        if self.dropped:
            return
        self.line.append(data)
        if self.href is not None:
            self.link_text.append(data)

    def _flush(self) -> None:
        text = " ".join("".join(self.line).split())
        self.line = []
        if text:
            self.blocks.append((self.in_main, self.prefix + text))
        self.prefix = ""

    def result(self) -> Page:
        self._flush()
        blocks = [t for main, t in self.blocks if main or not self.saw_main]
        text = ""
        for prev, block in zip([""] + blocks, blocks):  # list items stay one paragraph
            text += ("\n" if prev.startswith("- ") and block.startswith("- ") else "\n\n") + block
        self.page.text = text.strip()
        title = " ".join("".join(self.title_parts).split())
        self.page.title = self.first_h1 or TITLE_SUFFIX.sub("", title) or title
        self.page.tags = list(dict.fromkeys(self.page.tags))
        return self.page


def parse_html(html: str) -> Page:
    """Title (first h1, else <title> without its site suffix), canonical URL, keyword tags and main text."""
    parser = _PageParser()
    parser.feed(html)
    parser.close()
    return parser.result()
