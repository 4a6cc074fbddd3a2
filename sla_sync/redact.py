"""Secrets never leave the process: every form of a known secret is replaced by
``***`` in whatever sla-sync prints, logs, or records.

A tracker error body may echo the request's headers, so a token can arrive inside
a message in any of the forms it was sent in: raw (``PRIVATE-TOKEN``,
``X-Redmine-API-Key``, ``Bearer``), Basic (``base64(e-mail:token)``, Jira Cloud),
or URL-encoded.  ``REDACTOR`` knows every form of every secret the process has
read (``add``) and is applied at each exit: the log records, the command line's
output and error lines, and the errors a pass records in the state store.
"""

from __future__ import annotations

import base64
from urllib.parse import quote, quote_plus

MIN_LENGTH = 4  # shorter strings would blank out ordinary words


def forms(secret: str, user: str | None = None) -> set[str]:
    """The ways ``secret`` (with ``user``, for Basic) may appear in a message."""
    out = {secret, quote(secret, safe=""), quote_plus(secret)}
    for pair in ([f"{user}:{secret}"] if user else []) + [secret, f":{secret}"]:
        raw = pair.encode()
        out |= {base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()}
        out |= {v.rstrip("=") for v in list(out) if v.endswith("=")}
    return {f for f in out if len(f) >= MIN_LENGTH}


class Redactor:
    """Replaces every known form of every known secret with ``***``."""

    def __init__(self) -> None:
        self._forms: list[str] = []

    def add(self, secret: str, user: str | None = None) -> None:
        """Know this secret (and, for Basic authentication, the user it goes with)."""
        if not secret or len(secret) < MIN_LENGTH:
            return
        self._forms = sorted(set(self._forms) | forms(secret, user), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for form in self._forms:
            if form in text:
                text = text.replace(form, "***")
        return text

    def __bool__(self) -> bool:
        return bool(self._forms)


REDACTOR = Redactor()
