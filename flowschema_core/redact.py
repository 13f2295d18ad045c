"""Credentials never leave in a message, a log line, a run report or a DLQ record.

One helper for every URL FlowSchema shows: the password of the URL's userinfo and the
values of query parameters that carry secrets (API keys, tokens, signatures, S3 and GCS
presigned-URL parameters) become ``***``. :func:`redact_text` does the same for every URL
inside a longer text (an exception message from a library, say).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"

#: Query parameters whose value is a secret: these names, and any name holding one of
#: the SECRET_WORDS (compared lower-case). Masking a harmless parameter costs nothing.
SECRET_PARAMS = frozenset({"sig", "se", "sp", "sv", "session", "sessionid", "pwd", "passwd"})
SECRET_WORDS = ("token", "key", "secret", "pass", "signature", "auth", "credential")

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def _secret_param(name: str) -> bool:
    name = name.lower()
    return name in SECRET_PARAMS or any(word in name for word in SECRET_WORDS)


def redact_url(url: str) -> str:
    """``url`` with its password and secret query values replaced by ``***`` (for http(s),
    a user name without a password too: there it is usually a token)."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme and scheme not in ("http", "https"):
        url = _hide_database_password(url)
    else:
        try:
            parts = urlsplit(url)
        except ValueError:
            return url
        if "@" in parts.netloc:
            userinfo, _, host = parts.netloc.rpartition("@")
            user, has_password, _ = userinfo.partition(":")
            netloc = f"{user}:{MASK}@{host}" if has_password else f"{MASK}@{host}"
            url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if any(_secret_param(name) for name, _ in pairs):
        query = urlencode([(name, MASK if _secret_param(name) else value) for name, value in pairs], safe="*")
        url = urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))
    return url


def _hide_database_password(url: str) -> str:
    """A database URL without its password, parsed as SQLAlchemy parses it (a password may
    hold "#", "/" or "?" unescaped there)."""
    try:
        from sqlalchemy.engine import make_url

        return str(make_url(url).render_as_string(hide_password=True))
    except Exception:  # noqa: BLE001 - no SQLAlchemy, or not a URL it knows: the last "@" ends the userinfo
        head, at, host = url.rpartition("@")
        if not at:
            return url
        scheme, _, userinfo = head.partition("://")
        user, has_password, _ = userinfo.partition(":")
        return f"{scheme}://{user}:{MASK}@{host}" if has_password else url


def redact_text(text: str) -> str:
    """``text`` with every URL in it redacted."""
    return _URL.sub(lambda match: redact_url(match.group(0)), text)
