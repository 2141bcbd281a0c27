"""Test doubles and data for the knowledge tests: a hash embedder and a hand-made five-document help centre."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np

ARTICLES = {
    "shipping.md": """---
title: Shipping times and costs
url: https://help.example.com/shipping
tags: [delivery]
---
Standard delivery takes 3 to 5 working days within the country. Express delivery arrives the next working day
if you order before 2 pm.

## Costs

Standard shipping is free on orders over 50 euros; below that it costs 4.95 euros. Express shipping costs 9.95 euros.

## International

We ship to 30 countries in Europe. International parcels take 5 to 10 working days.
""",
    "returns.md": """# Returns and refunds

You can return any item within 30 days of delivery for a full refund.

## How to return an item

Print the prepaid return label from your account page, pack the item in its original box and drop it at any
post office. Refunds reach your bank account within 5 business days after we receive the parcel.
""",
    "password.html": """<html><head><title>Reset your password | Example Help</title>
<script>trackPageView()</script></head><body>
<nav><a href="/">Home</a> <a href="/account">Account</a></nav>
<main><h1>Reset your password</h1>
<p>If you forgot your password, click <b>Forgot password</b> on the sign-in page. We e-mail you a link that
is valid for one hour. Open the link and choose a new password of at least 10 characters.</p>
<h2>Did not get the e-mail?</h2><p>Check your spam folder, or <a href="https://help.example.com/contact">contact us</a>.</p>
</main><footer>Copyright Example Ltd</footer></body></html>
""",
    "payments.txt": """Payment methods

We accept Visa, Mastercard, American Express, PayPal and bank transfer. Cards are charged when your order ships.

Gift cards can be combined with any other payment method at checkout.
""",
    "products.csv": """question,answer,url,category
What is the battery life of the Aurora XR-220 headphones?,The XR-220 battery lasts 40 hours and charges fully in 2 hours with the USB-C cable.,https://help.example.com/xr220,products
How do I pair my headphones with my phone?,"Hold the power button for 5 seconds until the light blinks blue, then choose the headphones in your phone's Bluetooth settings.",,products
""",
}



class HashEmbedder:
    """Deterministic bag-of-words vectors: the same words give the same direction (no model needed)."""

    name = "hash-embedder"

    def __init__(self, dim: int = 64):
        self.dim = dim
        self.calls = 0

    def encode(self, texts):
        self.calls += 1
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                h = int(hashlib.md5(word.encode()).hexdigest(), 16)
                out[row, h % self.dim] += 1.0 if (h >> 20) & 1 else -1.0
            out[row, 0] += 1e-3
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def write_articles(folder: Path, articles: dict[str, str] = ARTICLES) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in articles.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder
