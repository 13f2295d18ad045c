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

#: Query parameters whose value is a secret (compared lower-case).
SECRET_PARAMS = frozenset({
    "api_key", "apikey", "api-key", "key", "token", "access_token", "refresh_token", "id_token", "auth", "authorization",
    "client_secret", "secret", "password", "passwd", "pwd", "signature", "sig", "session", "sessionid",
    "x-amz-signature", "x-amz-credential", "x-amz-security-token", "awsaccesskeyid",
    "x-goog-signature", "x-goog-credential", "sv", "se", "sp",  # Azure SAS: sig is above; these say what it grants
})

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def redact_url(url: str) -> str:
    """``url`` with its password and secret query values replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, has_password, _ = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{host}" if has_password else netloc
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(name.lower() in SECRET_PARAMS for name, _ in pairs):
            query = urlencode([(name, MASK if name.lower() in SECRET_PARAMS else value) for name, value in pairs], safe="*")
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str) -> str:
    """``text`` with every URL in it redacted."""
    return _URL.sub(lambda match: redact_url(match.group(0)), text)
