"""Verified customer identity, as Intercom's and Zendesk's identity verification: the host site, which knows who
is logged in, passes the widget a customer id and `HMAC-SHA256(server.identity_secret, customer id)` (hex);
the server checks that signature when a conversation starts and keeps only a keyed hash of the id, so the
conversations of one customer can be linked (a return across conversations, one rate limit) without the id.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from bot.settings import Settings

SECRET_ENV = "SUPPORTBOT_IDENTITY_SECRET"
MAX_ID_CHARS = 256
_KEY_CONTEXT = b"supportbot customer key\0"  # the stored hash is not the signature a client presents


def identity_secret(settings: Settings) -> str:
    return settings.server.identity_secret or os.environ.get(SECRET_ENV, "")


def signature(secret: str, customer_id: str) -> str:
    """What the host site computes: HMAC-SHA256 of the customer id with the shared secret, in hex."""
    return hmac.new(secret.encode(), customer_id.encode(), hashlib.sha256).hexdigest()


def verified(secret: str, customer_id: str, given: str) -> bool:
    return hmac.compare_digest(signature(secret, customer_id).encode(), given.strip().lower().encode())


def customer_key(secret: str, customer_id: str) -> str:
    """The keyed hash stored for a customer: the same customer always gets the same key (while the secret
    stays the same), and the id cannot be read back from it or guessed without the secret."""
    return hmac.new(secret.encode(), _KEY_CONTEXT + customer_id.encode(), hashlib.sha256).hexdigest()
