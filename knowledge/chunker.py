"""Documents to chunks: one section at a time, paragraphs packed up to a token budget that fits
the embedder's window, with the title and heading path kept as context for embedding and keywords."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from knowledge.documents import Document

SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
MIN_BUDGET = 24


@dataclass(frozen=True)
class Chunk:
    ord: int
    heading: str  # heading path, "Returns > Refund timing"
    text: str  # the passage as shown to users

    def context(self, title: str) -> str:
        """The passage under its title and heading path (what chunk sizes are budgeted for)."""
        head = f"{title} > {self.heading}" if self.heading else title
        return f"{head}\n{self.text}"

    def embedded(self) -> str:
        """What is embedded: the passage under its heading path. The title has its own vector, so a title asked
        as a question can be held out when the base tunes its search, and a long answer never dilutes it."""
        return f"{self.heading}\n{self.text}" if self.heading else self.text


def split_sentences(text: str) -> list[str]:
    """Sentences and list items, in order."""
    out = []
    for line in text.split("\n"):
        out += [s.strip() for s in SENTENCE_END.split(line) if s.strip()]
    return out


def approximate_tokens(text: str) -> int:
    """Word-piece count estimate for embedders without a tokenizer (test doubles)."""
    return len(re.findall(r"\w+|[^\w\s]", text)) * 4 // 3 + 1


def chunk_document(doc: Document, max_tokens: int, count_tokens: Callable[[str], int] = approximate_tokens) -> list[Chunk]:
    """Chunks of at most `max_tokens` (context included), following sections and paragraphs."""
    chunks: list[Chunk] = []
    for section in doc.sections:
        heading = " > ".join(section.headings)
        context_tokens = count_tokens(Chunk(0, heading, "").context(doc.title)) + 2  # [CLS], [SEP]
        budget = max(MIN_BUDGET, max_tokens - context_tokens)
        for text in pack(pieces(section.text, budget, count_tokens), budget):
            chunks.append(Chunk(len(chunks), heading, text))
    return chunks


def pieces(text: str, budget: int, count_tokens: Callable[[str], int]) -> list[tuple[str, int, str]]:
    """(text, tokens, separator before it): paragraphs, or sentences and word runs where a paragraph is too long."""
    out = []
    for paragraph in re.split(r"\n\s*\n", text):
        paragraph = paragraph.strip()
        if not paragraph:
            continue
        tokens = count_tokens(paragraph)
        if tokens <= budget:
            out.append((paragraph, tokens, "\n\n"))
            continue
        first = True
        for sentence in split_sentences(paragraph):
            for part in split_long(sentence, budget, count_tokens):
                sep = "\n\n" if first else "\n" if part.startswith("- ") else " "
                out.append((part, count_tokens(part), sep))
                first = False
    return out


def split_long(sentence: str, budget: int, count_tokens: Callable[[str], int]) -> list[str]:
    tokens = count_tokens(sentence)
    if tokens <= budget:
        return [sentence]
    words = sentence.split()
    per_part = max(1, len(words) * budget // tokens)
    return [" ".join(words[i:i + per_part]) for i in range(0, len(words), per_part)]


def pack(parts: list[tuple[str, int, str]], budget: int) -> list[str]:
    chunks, current, used = [], "", 0
    for text, tokens, sep in parts:
        if current and used + tokens > budget:
            chunks.append(current)
            current, used = "", 0
        current = f"{current}{sep}{text}" if current else text
        used += tokens
    if current:
        chunks.append(current)
    return chunks
