"""Reading knowledge sources into documents: Markdown, HTML, text, FAQ CSV/TSV, JSON lines, PDF.

A file that cannot be used raises `Skip` with a reason; a bad row of a FAQ or JSONL file is reported
as a skip naming file and line while the other rows are read.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from knowledge.webpage import parse_html

SUFFIXES = {".md": "markdown", ".markdown": "markdown", ".html": "html", ".htm": "html", ".txt": "text",
            ".csv": "faq", ".tsv": "faq", ".jsonl": "jsonl", ".ndjson": "jsonl", ".pdf": "pdf"}
PARSER_VERSION = "3"  # bump when parsing or what is embedded changes, so the next sync re-reads every file

QUESTION_COLUMNS = ("question", "q", "title")
ANSWER_COLUMNS = ("answer", "a", "body", "text")
URL_COLUMNS = ("url", "link")
TAG_COLUMNS = ("category", "categories", "tags", "tag", "topic")


class Skip(Exception):
    """A file (or row) that is not ingested, with the reason shown to the user."""


@dataclass(frozen=True)
class Section:
    headings: tuple[str, ...]  # heading path below the document title
    text: str


@dataclass(frozen=True)
class Document:
    id: str  # stable: path relative to the synced folder, plus '#key' for rows of FAQ/JSONL files
    title: str
    url: str
    tags: tuple[str, ...]
    sections: tuple[Section, ...]

    @property
    def hash(self) -> str:
        data = json.dumps([self.title, self.url, self.tags, [(s.headings, s.text) for s in self.sections]])
        return hashlib.sha256(data.encode()).hexdigest()


def read_document(path: Path, doc_id: str, data: bytes) -> tuple[list[Document], list[tuple[str, str]]]:
    """Parse one file's bytes: (documents, skipped rows as (file:line, reason)); raises Skip for the file."""
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise Skip(f"unsupported file type {path.suffix or '(none)'}; supported: {', '.join(sorted(SUFFIXES))}")
    if kind == "pdf":
        docs, skipped = [read_pdf(path, doc_id, data)], []
    elif kind in ("faq", "jsonl"):
        reader = read_faq if kind == "faq" else read_jsonl
        docs, skipped = reader(path, doc_id, decode(data))
    else:
        text = decode(data)
        doc = {"markdown": read_markdown, "html": read_html, "text": read_text}[kind](path, doc_id, text)
        docs, skipped = [doc], []
    docs = [d for d in docs if any(s.text.strip() for s in d.sections)]
    if not docs and not skipped:
        raise Skip("empty document: no text after parsing")
    return docs, skipped


def safe_url(url: str) -> bool:
    """An article link every client may follow: http(s) with a host, or relative. Not `javascript:`, `data:`
    or any other scheme, in any spelling a browser would still run (case, control characters, entities)."""
    if not url:
        return True
    if url != url.strip() or re.search(r"[\x00-\x20\x7f]", url):
        return False
    parts = urlsplit(url)
    if parts.scheme:
        return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)
    first = re.split(r"[/?#]", url, maxsplit=1)[0]
    return ":" not in first and "&" not in first and "\\" not in url


def decode(data: bytes) -> str:
    """UTF-8 (or UTF-16 with a byte-order mark) text; anything else is skipped with where it broke."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    if b"\x00" in data[:8192]:
        raise Skip("binary file, not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise Skip(f"not UTF-8 text: byte 0x{data[e.start]:02x} on line {line}; save the file as UTF-8") from e


def title_from_name(path: Path) -> str:
    name = re.sub(r"[_-]+", " ", path.stem).strip()
    return name[:1].upper() + name[1:]


# -- Markdown (also the target format of HTML) ---------------------------------------------------

HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")


def read_markdown(path: Path, doc_id: str, text: str) -> Document:
    meta, body = front_matter(path, text)
    tags = meta.get("tags") or meta.get("category") or ()
    tags = [tags] if isinstance(tags, str) else tags
    return markdown_document(doc_id, body, str(meta.get("title") or ""), str(meta.get("url") or ""),
                             tuple(str(t) for t in tags), default_title=title_from_name(path))


def front_matter(path: Path, text: str) -> tuple[dict, str]:
    if not text.startswith("---"):
        return {}, text
    match = re.match(r"---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(\r?\n|$)", text, re.S)
    if not match:
        return {}, text
    try:
        meta = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise Skip(f"invalid front matter{f' on line {mark.line + 2}' if mark else ''}: "
                   f"{getattr(e, 'problem', e)}") from e
    if not isinstance(meta, dict):
        raise Skip("front matter must be a mapping (title:, url:, tags:)")
    return meta, text[match.end():]


def markdown_document(doc_id: str, text: str, title: str, url: str, tags: tuple[str, ...],
                      default_title: str) -> Document:
    """Sections by ATX/setext headings; a leading H1 becomes the title when none is given."""
    lines = text.replace("\r\n", "\n").split("\n")
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    body: list[str] = []
    fenced = False

    def close() -> None:
        content = clean_markdown("\n".join(body))
        if content:
            sections.append(Section(tuple(h for _, h in path), content))
        body.clear()

    for line in lines:
        if FENCE.match(line):
            fenced = not fenced
        heading = None if fenced else HEADING.match(line)
        # A setext heading is recognised at its underline: the line before it becomes the heading.
        if not fenced and re.fullmatch(r"(=+|-{3,})\s*", line) and body and body[-1].strip():
            level, name = (1 if line.strip()[0] == "=" else 2), body.pop().strip()
            heading_parts = (level, name)
        elif heading:
            heading_parts = (len(heading.group(1)), clean_inline(heading.group(2)))
        else:
            body.append(line)
            continue
        close()
        level, name = heading_parts
        if level == 1 and not title and not sections and not path:
            title = name
            continue
        if level == 1 and name == title and not path:
            continue
        while path and path[-1][0] >= level:
            path.pop()
        path.append((level, name))
    close()
    return Document(doc_id, title or default_title, url, normalise_tags(tags), tuple(sections))


def clean_inline(text: str) -> str:
    text = re.sub(r"!\[([^\]]*)\]\([^)]*\)", r"\1", text)  # images -> alt text
    text = re.sub(r"\[([^\]]+)\]\(((?:https?:|mailto:)[^)\s]*)[^)]*\)", r"\1 (\2)", text)  # absolute links kept
    text = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", text)  # relative links -> text
    text = re.sub(r"<[^>\n]+>", "", text)
    text = re.sub(r"(\*\*|__|`)", "", text)
    return text.strip()


BLOCK_START = re.compile(r"^\s*(- |\d+[.)] |\|)")


def clean_markdown(text: str) -> str:
    """Inline markup removed, hard-wrapped lines of a paragraph joined, list items and table rows kept
    one per line, paragraphs separated by one blank line."""
    out: list[str] = []
    for line in text.split("\n"):
        line = "" if FENCE.match(line) else re.sub(r"^(\s*)[*+]\s+", r"\1- ", clean_inline(line.rstrip()))
        wrapped = line and out and out[-1] and not BLOCK_START.match(line) and not out[-1].lstrip().startswith("|")
        if wrapped:
            out[-1] += " " + line.strip()
        else:
            out.append(line)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip()


def normalise_tags(tags) -> tuple[str, ...]:
    out = []
    for tag in tags:
        out += [t.strip().lower() for t in re.split(r"[;,]", str(tag)) if t.strip()]
    return tuple(dict.fromkeys(out))


# -- other formats -------------------------------------------------------------------------------

def read_html(path: Path, doc_id: str, text: str) -> Document:
    page = parse_html(text)
    return markdown_document(doc_id, page.text, page.title, page.url, tuple(page.tags), title_from_name(path))


def read_text(path: Path, doc_id: str, text: str) -> Document:
    """Plain text: a short first line followed by a blank line is the title."""
    text = text.replace("\r\n", "\n").strip()
    first, _, rest = text.partition("\n")
    title = ""
    if len(first) <= 80 and rest.startswith("\n") and not first.endswith((".", "?", "!", ":")):
        title, text = first.strip(), rest
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    return Document(doc_id, title or title_from_name(path), "", (), (Section((), text),) if text else ())


def read_faq(path: Path, doc_id: str, text: str) -> tuple[list[Document], list[tuple[str, str]]]:
    """One document per row of a question/answer table with optional url and category columns."""
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise Skip("empty document: no header row") from None
    except csv.Error as e:
        raise Skip(f"line 1: malformed header: {e}") from e

    def column(names: tuple[str, ...]) -> int | None:
        return next((header.index(n) for n in names if n in header), None)

    q, a, u, t = column(QUESTION_COLUMNS), column(ANSWER_COLUMNS), column(URL_COLUMNS), column(TAG_COLUMNS)
    if q is None or a is None:
        raise Skip(f"line 1: header must name a question and an answer column, found {header}")
    docs, skipped, keys = [], [], set()
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            skipped.append((f"{path}:{reader.line_num}", f"malformed CSV, rest of file skipped: {e}"))
            break
        where = f"{path}:{reader.line_num}"
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            skipped.append((where, f"row has {len(row)} fields, the header has {len(header)}"))
            continue
        question, answer = row[q].strip(), row[a].strip()
        if not question or not answer:
            skipped.append((where, f"empty {'question' if not question else 'answer'}"))
            continue
        key = unique_key(slug(question), keys)
        tags = normalise_tags([row[t]]) if t is not None else ()
        docs.append(Document(f"{doc_id}#{key}", question, row[u].strip() if u is not None else "", tags,
                             (Section((), answer),)))
    return docs, skipped


def read_jsonl(path: Path, doc_id: str, text: str) -> tuple[list[Document], list[tuple[str, str]]]:
    """One document per line: {"title"|"question", "text"|"content"|"body"|"answer", "url", "tags"|"category", "id"}."""
    docs, skipped, keys = [], [], set()
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            skipped.append((where, f"invalid JSON: {e.msg} at column {e.colno}"))
            continue
        if not isinstance(obj, dict):
            skipped.append((where, "expected a JSON object"))
            continue
        body = next((obj[k] for k in ("text", "content", "body", "answer") if isinstance(obj.get(k), str)), "")
        title = str(obj.get("title") or obj.get("question") or "").strip()
        if not body.strip():
            skipped.append((where, "no text, content, body or answer field"))
            continue
        tags = obj.get("tags") or obj.get("category") or ()
        key = unique_key(slug(str(obj.get("id") or title or n)), keys)
        docs.append(markdown_document(f"{doc_id}#{key}", body, title, str(obj.get("url") or ""),
                                      tuple([tags] if isinstance(tags, str) else tags), f"{title_from_name(path)} {n}"))
    return docs, skipped


def read_pdf(path: Path, doc_id: str, data: bytes) -> Document:
    """PDF manuals through the optional `pypdf` package (`pip install supportbot[pdf]`): a section per page."""
    try:
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError
    except ImportError:
        raise Skip("PDF support needs the optional package pypdf: pip install 'supportbot[pdf]'") from None
    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
        title = str((reader.metadata or {}).get("/Title") or "").strip()
    except (PdfReadError, ValueError, KeyError, TypeError) as e:
        raise Skip(f"unreadable PDF: {e}") from e
    sections = tuple(Section((f"page {i}",), re.sub(r"[ \t]+", " ", text)) for i, text in enumerate(pages, 1) if text)
    return Document(doc_id, title or title_from_name(path), "", (), sections)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "item"


def unique_key(key: str, seen: set[str]) -> str:
    n, out = 1, key
    while out in seen:
        n += 1
        out = f"{key}-{n}"
    seen.add(out)
    return out
