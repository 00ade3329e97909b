"""Stable article ids, content hashes and URL helpers."""

from __future__ import annotations

import hashlib
import json
import re
from urllib.parse import parse_qsl, urlencode, urlsplit

from index.models import ParsedArticle
from index.text import fold

KEY_LENGTH = 12

_RECORD_SUFFIX = re.compile(r":\d+$")
# Query parameters that only track a click; they do not name a different article.
_TRACKING_PARAMS = re.compile(r"^(utm_\w+|fbclid|gclid|dclid|msclkid|mc_cid|mc_eid|cmpid)$")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _sha256(text: str) -> str:
    """Hex SHA-256 of a string's UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def url_host(url: str) -> str:
    """The URL's host, lowercased and without a leading `www.`; '' when there is none."""
    text = url.strip()
    if not text:
        return ""
    if "://" not in text and not text.startswith("//"):
        text = "//" + text  # a bare "example.com/path" still names a host
    try:
        host = urlsplit(text).hostname or ""
    except ValueError:
        return ""
    return host.removeprefix("www.")


def normalize_url(url: str) -> str:
    """A URL reduced to what names the article, so variants of one link compare equal.

    Drops the scheme (http and https are the same article), `www.`, default ports, user info,
    the fragment, tracking parameters and a trailing slash; sorts the remaining query.
    """
    text = url.strip()
    if not text:
        return ""
    if "://" not in text and not text.startswith("//"):
        text = "//" + text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return url.strip()
    host = url_host(text)
    if not host:
        return url.strip()
    default_port = _DEFAULT_PORTS.get(parts.scheme.lower())
    netloc = host if port in (None, default_port) else f"{host}:{port}"
    query = sorted(
        (key, value)
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
        if not _TRACKING_PARAMS.match(key.lower())
    )
    path = parts.path.rstrip("/")
    return netloc + path + (f"?{urlencode(query)}" if query else "")


def file_origin(origin: str) -> str:
    """The file path of an origin: 'data/a.jsonl:7' -> 'data/a.jsonl'."""
    return _RECORD_SUFFIX.sub("", origin)


def article_key(article: ParsedArticle) -> str:
    """A stable id: 12 hex chars of SHA-256 over what identifies the article.

    With a URL: the normalised URL, so one article read from two files (or two link variants)
    gets one id. Without: the file path (without the record's ':N') plus the title, so the id
    survives edits of the text and records moving within a file; a record with neither URL nor
    title falls back to its full origin, record number included.
    """
    url = normalize_url(article.url)
    if url:
        material = f"url\n{url}"
    elif article.title:
        material = f"file\n{file_origin(article.origin)}\n{article.title}"
    else:
        material = f"origin\n{article.origin}"
    return _sha256(material)[:KEY_LENGTH]


def content_hash(article: ParsedArticle) -> str:
    """SHA-256 over the text and every metadata field; changes when any of them changes.

    The origin is not included: it says where the article was found, not what it is, so a
    file moved or a record shifted to another line keeps its hash.
    """
    fields = [
        article.text,
        article.title,
        article.source,
        article.url,
        article.published.isoformat() if article.published else None,
        list(article.authors),
        list(article.labels),
    ]
    return _sha256(json.dumps(fields, ensure_ascii=False))


def normalized_text_hash(text: str) -> str:
    """SHA-256 of the text folded (`index.text.fold`) and whitespace-collapsed: finds exact
    duplicates whatever their Unicode form, invisible characters or quote style."""
    return _sha256(" ".join(fold(text).split()))
