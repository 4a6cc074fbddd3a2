"""Reading a secret by reference: from an environment variable or a file.

Secrets never go in a policy file; a policy names where one is (``api_key_env`` /
``api_key_file`` for a tracker's key, ``url_env`` / ``url_file`` for a
notification channel's Apprise URL).  A secret stands alone on one line: one
trailing line break (``\\n`` or ``\\r\\n``) is dropped, anything else around or
inside it (more lines, spaces, tabs) is refused, as it would otherwise end up in
an HTTP header or a URL.  Every error names where the secret was looked for,
never the secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from .errors import UserError


def read_reference(variable: str | None, file: str | None, env: Mapping[str, str], *, what: str,
                   missing: str) -> str:
    """The secret (``what``: "API key", "Apprise URL") from the variable, else the
    file; ``missing`` is the message when the policy names neither."""
    if variable:
        value = env.get(variable, "")
        if value.strip():
            return one_line(value, f"the environment variable {variable}", what)
        if not file:
            raise UserError(f"the environment variable {variable} is empty or unset: set it to the {what}")
    if file:
        path = Path(file).expanduser()
        try:
            value = path.read_bytes().decode("utf-8")  # bytes: text mode would turn a lone \r into \n
        except OSError as exc:
            raise UserError(f"cannot read the {what} file {path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise UserError(
                f"the {what} file {path} is not UTF-8 text: it must hold the {_short(what)} alone on one line"
            ) from None
        if value.strip():
            return one_line(value, f"the {what} file {path}", what)
        raise UserError(f"the {what} file {path} is empty")
    raise UserError(missing)


def one_line(value: str, where: str, what: str = "API key") -> str:
    """The secret without its one trailing line break; ``UserError`` (naming
    ``where``, never the secret) when more than the secret is there."""
    secret = value.removesuffix("\n").removesuffix("\r") if value.endswith("\n") else value
    if any(ch.isspace() or not ch.isprintable() for ch in secret):
        kind = "more than one line" if "\n" in secret or "\r" in secret else "spaces or control characters"
        short = _short(what)
        raise UserError(
            f"{where} holds {kind} besides the {short}: it must hold the {short} alone on one line "
            "(one line break at the end is fine)"
        )
    return secret


def _short(what: str) -> str:
    """"API key" → "key", "Apprise URL" → "URL": how the messages name it the second time."""
    return what.split()[-1]
