"""Credentials out of whatever is printed or written (logs, reports, execution records).

One function for both worlds: the containers' logs and reports (`steps/`) and the builder's
records (`pipeline/`, which may import `steps`, never the other way). A URL may carry a password
in its user info (`user:pw@host`) or in its query (`?password=`, `?sslpassword=`, a presigned
`X-Amz-Signature`...); both are replaced by `***`, everything else is kept as written so the
redacted text still says which source was meant. Standard library only (see steps/contract.py).
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"

# Query keys whose value is a credential: a name containing one of these (case-insensitive).
CREDENTIAL_WORDS = ("password", "passwd", "pwd", "secret", "token", "signature", "credential", "apikey",
                    "api_key", "api-key", "private_key")

# A URL inside free text: a scheme, `://`, then anything up to whitespace or a quote.
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`]+")


def is_credential_key(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in CREDENTIAL_WORDS)


def _split(url: str) -> tuple[str, str, str, str]:
    """(scheme://, authority, path, ?query#fragment) of a URL, without decoding anything."""
    scheme, _, rest = url.partition("://")
    end = min((i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    path, mark, query = tail.partition("?")
    return scheme + "://", authority, path, mark + query


def url_credentials(url: str) -> list[str]:
    """Where `url` carries a credential: `user info` and/or `query key NAME`, in that order."""
    if "://" not in url:
        return []
    _, authority, _, query = _split(url)
    found = []
    userinfo = authority.rpartition("@")[0] if "@" in authority else ""
    if ":" in userinfo and userinfo.partition(":")[2]:
        found.append("user info")
    for pair in re.split(r"[&;]", query.lstrip("?").partition("#")[0]):
        name, eq, value = pair.partition("=")
        if eq and value and is_credential_key(name):
            found.append(f"query key {name}")
    return found


def redact_url(url: str) -> str:
    """`url` with the password of its user info and every credential query value as `***`."""
    if "://" not in url:
        return url
    scheme, authority, path, query = _split(url)
    if "@" in authority:
        userinfo, _, host = authority.rpartition("@")
        user, colon, password = userinfo.partition(":")
        authority = f"{user}{colon}{MASK if password else ''}@{host}"
    if query:
        body, hash_, fragment = query[1:].partition("#")
        pairs = []
        for pair in re.split(r"([&;])", body):
            name, eq, value = pair.partition("=")
            pairs.append(f"{name}={MASK}" if eq and value and is_credential_key(name) else pair)
        query = "?" + "".join(pairs) + hash_ + fragment
    return scheme + authority + path + query


def redact_text(text: str) -> str:
    """Every URL found in `text` redacted (see `redact_url`)."""
    return _URL.sub(lambda m: redact_url(m.group(0)), text) if "://" in text else text


def redact(value: Any) -> Any:
    """A copy of a JSON-like value (dicts, lists, strings) with every URL in every string redacted."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {key: redact(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(item) for item in value]
    return value
