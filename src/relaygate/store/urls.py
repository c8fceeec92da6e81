"""Database URL parsing and redaction, so no password ever reaches a message or a log line."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

SQLITE_PREFIX = "sqlite:///"
POSTGRES_SCHEMES = frozenset({"postgresql", "postgres"})


def url_scheme(url: str) -> str:
    """The scheme before ``://``, lower-cased; empty when there is none."""
    scheme, sep, _ = url.partition("://")
    return scheme.lower() if sep else ""


def sqlite_path(url: str) -> str:
    """``sqlite:///relative.db``, ``sqlite:////abs/path.db`` or ``sqlite:///:memory:`` -> path."""
    if not url.lower().startswith(SQLITE_PREFIX) or len(url) == len(SQLITE_PREFIX):
        raise ValueError(
            "SQLite URLs look like sqlite:///relative/path.db, sqlite:////absolute/path.db "
            "or sqlite:///:memory:"
        )
    return url[len(SQLITE_PREFIX) :]


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***``."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return f"{url_scheme(url) or 'unparsable'}://(redacted)"
    if not password:
        return url
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hostinfo}"))


def scrub(text: str, url: str) -> str:
    """``text`` with the URL's password removed, for driver messages that might echo it."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return text
    return text.replace(password, "***") if password else text
