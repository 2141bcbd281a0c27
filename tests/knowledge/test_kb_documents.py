"""Reading each source format, and each kind of bad input named with a reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from knowledge.chunker import chunk_document, split_sentences
from knowledge.documents import Skip, read_document


def read(tmp_path: Path, name: str, content: str | bytes):
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return read_document(path, name, path.read_bytes())


def test_markdown_front_matter_headings_and_links(tmp_path):
    (doc,), skipped = read(tmp_path, "a.md", (
        "---\ntitle: Returns\nurl: https://x.example/returns\ntags: [Orders, refunds]\n---\n"
        "# Returns\n\nIntro with a [label](https://x.example/label) and **bold** text.\n\n"
        "## Sending it back\n\nStep one.\n\n### Abroad\n\nCustoms form.\n\n## Refunds\n\n* five days\n"
    ))
    assert skipped == []
    assert (doc.id, doc.title, doc.url, doc.tags) == ("a.md", "Returns", "https://x.example/returns", ("orders", "refunds"))
    assert [(s.headings, s.text) for s in doc.sections] == [
        ((), "Intro with a label (https://x.example/label) and bold text."),
        (("Sending it back",), "Step one."),
        (("Sending it back", "Abroad"), "Customs form."),
        (("Refunds",), "- five days"),
    ]


def test_markdown_without_front_matter_takes_h1_then_file_name_as_title(tmp_path):
    assert read(tmp_path, "x.md", "# Gift cards\n\nThey never expire.")[0][0].title == "Gift cards"
    assert read(tmp_path, "gift_cards.md", "They never expire.")[0][0].title == "Gift cards"


def test_html_keeps_main_content_headings_and_links_drops_chrome(tmp_path):
    (doc,), _ = read(tmp_path, "p.html", """<html><head><title>Track an order | Shop Help</title>
        <link rel="canonical" href="https://help.shop.example/track"><style>p{}</style>
        <script>var secret = "tracking pixel";</script></head><body>
        <header class="site-header">Shop logo Sign in</header>
        <nav class="breadcrumbs"><a href="/">Help</a> &gt; Orders</nav>
        <div class="cookie-banner">We use cookies</div>
        <article><h1>Track an order</h1><p>Open <a href="/orders">your orders</a> to see where it is.</p>
        <h2>Carrier site</h2><ul><li>Copy the tracking number</li><li>Paste it on the carrier page</li></ul></article>
        <footer>Copyright Shop</footer></body></html>""")
    assert (doc.title, doc.url) == ("Track an order", "https://help.shop.example/track")
    text = "\n".join(s.text for s in doc.sections)
    assert "your orders (https://help.shop.example/orders)" in text
    assert "- Copy the tracking number\n- Paste it on the carrier page" in text
    assert doc.sections[-1].headings == ("Carrier site",)
    for chrome in ("secret", "logo", "cookies", "Copyright", "Help >"):
        assert chrome not in text


def test_plain_text_title_line(tmp_path):
    (doc,), _ = read(tmp_path, "pay.txt", "Payment methods\n\nWe accept cards.\n\nAnd PayPal.")
    assert doc.title == "Payment methods"
    assert doc.sections[0].text == "We accept cards.\n\nAnd PayPal."


def test_faq_csv_rows_become_documents_and_malformed_rows_are_skipped_with_line(tmp_path):
    docs, skipped = read(tmp_path, "faq.csv", (
        "Question,Answer,URL,Category\n"
        "Do you ship abroad?,Yes to 30 countries.,https://x.example/abroad,Shipping\n"
        "Only a question\n"
        "Empty answer?,,,\n"
        '"Multi-line?","Line one\nline two",,"Orders; Gifts"\n'
    ))
    assert [(d.id, d.title, d.url, d.tags) for d in docs] == [
        ("faq.csv#do-you-ship-abroad", "Do you ship abroad?", "https://x.example/abroad", ("shipping",)),
        ("faq.csv#multi-line", "Multi-line?", "", ("orders", "gifts")),
    ]
    assert docs[1].sections[0].text == "Line one\nline two"
    assert [where.rsplit(":", 1)[1] for where, _ in skipped] == ["3", "4"]
    assert "1 fields, the header has 4" in skipped[0][1] and "empty answer" in skipped[1][1]


def test_tsv_and_header_without_answer_column(tmp_path):
    docs, _ = read(tmp_path, "faq.tsv", "question\tanswer\nWhere?\tHere, in the shop.\n")
    assert docs[0].sections[0].text == "Here, in the shop."
    with pytest.raises(Skip, match="question and an answer column"):
        read(tmp_path, "bad.csv", "title,body_text\nx,y\n")


def test_jsonl_documents_and_bad_lines(tmp_path):
    docs, skipped = read(tmp_path, "kb.jsonl", (
        '{"id": "a1", "title": "Warranty", "text": "Two years.\\n\\n## Claims\\n\\nSend the receipt.", "tags": "legal"}\n'
        "{not json}\n[1, 2]\n"
        '{"title": "No body"}\n'
    ))
    assert [(d.id, d.title, d.tags) for d in docs] == [("kb.jsonl#a1", "Warranty", ("legal",))]
    assert docs[0].sections[1].headings == ("Claims",)
    assert [w.rsplit(":", 1)[1] for w, _ in skipped] == ["2", "3", "4"]
    assert "invalid JSON" in skipped[0][1]


@pytest.mark.parametrize("name, content, reason", [
    ("latin1.md", "Caf\xe9 opening hours".encode("latin-1"), "not UTF-8 text: byte 0xe9 on line 1"),
    ("empty.md", "---\ntitle: Nothing\n---\n\n", "empty document"),
    ("blank.txt", "   \n\n", "empty document"),
    ("image.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00", "binary file"),
    ("notes.docx", b"PK\x03\x04", "unsupported file type .docx"),
    ("front.md", "---\ntitle: [unclosed\n---\nbody", "invalid front matter"),
    ("empty.csv", "", "empty document"),
])
def test_bad_files_are_skipped_with_a_reason(tmp_path, name, content, reason):
    with pytest.raises(Skip, match=reason.replace(".", r"\.")):
        read(tmp_path, name, content)


def test_utf16_with_bom_is_read(tmp_path):
    (doc,), _ = read(tmp_path, "w.txt", "Opening hours\n\nMonday to Friday.".encode("utf-16"))
    assert doc.title == "Opening hours"


def test_pdf_pages_become_sections(tmp_path):
    pytest.importorskip("pypdf")
    (doc,), _ = read(tmp_path, "manual.pdf", minimal_pdf("Hold the reset button for ten seconds."))
    assert doc.title == "Manual"
    assert doc.sections[0].headings == ("page 1",)
    assert "reset button" in doc.sections[0].text


def test_unreadable_pdf_is_skipped(tmp_path):
    pytest.importorskip("pypdf")
    with pytest.raises(Skip, match="PDF"):
        read(tmp_path, "broken.pdf", b"%PDF-1.4 this is not really a pdf")


def minimal_pdf(text: str) -> bytes:
    """A one-page PDF with one line of text, written by hand (no PDF writer needed)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = b"%PDF-1.4\n", []
    for i, obj in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (i, obj)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return out


def test_chunks_fit_the_budget_and_keep_the_heading_path(tmp_path, minilm):
    long_paragraph = " ".join(f"Sentence number {i} explains one more detail of the warranty terms." for i in range(60))
    (doc,), _ = read(tmp_path, "w.md", f"# Warranty\n\n## Terms\n\n### Details\n\n{long_paragraph}\n\nShort closing note.")
    chunks = chunk_document(doc, 64, minilm.count_tokens)
    assert len(chunks) > 5
    for chunk in chunks:
        assert chunk.heading == "Terms > Details"
        assert minilm.count_tokens(chunk.context(doc.title)) + 2 <= 64
    assert chunks[0].context(doc.title).startswith("Warranty > Terms > Details\nSentence number 0")
    assert " ".join(c.text for c in chunks).split() == f"{long_paragraph} Short closing note.".split()


def test_sentence_split_keeps_list_items_apart():
    assert split_sentences("First do this. Then that!\n- item one\n- item 2. Still item 2") == [
        "First do this.", "Then that!", "- item one", "- item 2.", "Still item 2"]
