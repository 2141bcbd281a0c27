"""PII redaction: e-mails, phone numbers, card and account numbers, optional order ids.

Runs before anything is stored or used for training. Each kind can be switched off in settings.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from core.settings import setting


@dataclass(frozen=True)
class RedactSettings:
    """What personal data is replaced by a placeholder before storage."""

    emails: bool = setting(True, "Replace e-mail addresses with [EMAIL].")
    phones: bool = setting(True, "Replace phone numbers with [PHONE].")
    cards: bool = setting(True, "Replace payment card numbers (Luhn-checked) with [CARD].")
    accounts: bool = setting(True, "Replace IBANs and long account numbers with [ACCOUNT].")
    order_id_pattern: str = setting(
        "", "Regular expression for order-style ids to replace with [ORDER_ID]; empty = keep them."
    )

    def __post_init__(self) -> None:
        if self.order_id_pattern:
            try:
                re.compile(self.order_id_pattern)
            except re.error as e:
                raise ValueError(f"privacy.order_id_pattern is not a valid regular expression: {e}") from e


_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_CARD = re.compile(r"(?<![\w])(?:\d[ -]?){12,18}\d(?![\w])")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
_PHONE = re.compile(r"(?<![\w])(?:\+|00)?\d{1,3}?[ .-]?\(?\d{2,4}\)?(?:[ .-]?\d{2,4}){2,4}(?![\w])")
_LONG_DIGITS = re.compile(r"(?<![\w+])\d{12,}(?![\w])")
_DATE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}|\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}")


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _looks_like_phone(m: re.Match) -> bool:
    digits = re.sub(r"\D", "", m.group())
    return 7 <= len(digits) <= 15 and not _DATE.fullmatch(m.group().strip())


class Redactor:
    """Replaces PII with placeholders and counts what it replaced."""

    def __init__(self, settings: RedactSettings = RedactSettings()):
        self.settings = settings
        self.order = re.compile(settings.order_id_pattern) if settings.order_id_pattern else None
        self.counts: Counter[str] = Counter()

    def __call__(self, text: str) -> str:
        return self.redact(text)

    def redact(self, text: str) -> str:
        s = self.settings
        if s.emails:
            text = self._sub(_EMAIL, "EMAIL", text)
        if s.cards:
            text = self._sub(_CARD, "CARD", text, lambda m: _luhn_ok(re.sub(r"\D", "", m.group())))
        if s.accounts:
            text = self._sub(_IBAN, "ACCOUNT", text)
            text = self._sub(_LONG_DIGITS, "ACCOUNT", text)
        if self.order is not None:
            text = self._sub(self.order, "ORDER_ID", text)
        if s.phones:
            text = self._sub(_PHONE, "PHONE", text, _looks_like_phone)
        return text

    def _sub(self, pattern: re.Pattern, kind: str, text: str, accept=lambda m: True) -> str:
        def repl(m: re.Match) -> str:
            if not accept(m):
                return m.group()
            self.counts[kind] += 1
            return f"[{kind}]"

        return pattern.sub(repl, text)
