"""Polite, bounded HTTP for feeds and article pages (httpx).

- Only http(s); a host that resolves to a loopback, private, link-local or otherwise
  non-public address is refused unless `allow_private` (a feed must not make the bot probe
  its own network), an IPv6 address carrying such an IPv4 one (NAT64, 6to4, …) too.
  Every redirect hop is checked the same way; at most `max_redirects`.
- Conditional requests: the caller passes the ETag / Last-Modified it kept, and a 304 costs
  nothing more.
- One deadline for each request, `timeout_seconds` from sending it to its last body byte
  (connect, headers and body together): a server that drips a byte every few seconds is cut
  off like one that stalls. Each redirect hop and retry is its own request. A body over
  `max_bytes` is refused as it streams in.
- Retries with exponential backoff (tenacity) on timeouts, connection errors and 5xx; none on
  4xx.
- robots.txt (urllib.robotparser) for article pages, fetched once per host and run.
- At most `per_host` requests at once to one host, `host_delay` seconds apart.

The name check resolves the host before the request; a DNS answer that changes in between
(rebinding) is not caught here.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
import time
import urllib.robotparser
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

USER_AGENT = "articlebot/0.1 (+https://github.com/articlebot; feed reader)"


class FetchError(Exception):
    """A fetch that failed for good; `kind` names why (dns, timeout, http 404, private, …)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class _Retryable(Exception):
    """A failure worth another try (timeout, connection error, 5xx)."""

    def __init__(self, error: FetchError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True, slots=True)
class Fetched:
    """A response: status 200 with its body, or 304 (not modified) with none."""

    url: str  # after redirects
    status: int
    body: bytes = b""
    content_type: str = ""
    charset: str | None = None
    etag: str | None = None
    last_modified: str | None = None


# The deadline of the request the current thread is sending (time.monotonic() seconds), read
# by the network streams below; None outside a request.
_request = threading.local()


def _time_left(timeout: float | None, error: type[Exception]) -> float | None:
    """A socket operation's `timeout` (seconds) cut to what is left of the current request's
    deadline. Raises `error` (an httpcore timeout) when nothing is left."""
    deadline = getattr(_request, "deadline", None)
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise error("the request's deadline passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write ends by the current request's deadline."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _time_left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _time_left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._stream.start_tls(
            ssl_context, server_hostname, _time_left(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's sockets, each operation bounded by the current request's deadline.

    httpx's timeouts bound each socket operation, not a request (encode/httpx#1450), so a
    server sending a byte within every read timeout would hold a request for ever.
    """

    def __init__(self) -> None:
        self._backend = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._backend.connect_tcp(
            host, port, _time_left(timeout, httpcore.ConnectTimeout), local_address,
            socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None
                            ) -> httpcore.NetworkStream:
        return _DeadlineStream(self._backend.connect_unix_socket(
            path, _time_left(timeout, httpcore.ConnectTimeout), socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


class _DeadlineTransport(httpx.HTTPTransport):
    """httpx's transport over `_DeadlineBackend` (proxies from the environment are not used)."""

    def __init__(self) -> None:
        super().__init__()
        # HTTPTransport takes no network backend: its pool is replaced by one with ours, with
        # httpx's default limits and certificate checks.
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_DeadlineBackend(),
        )


@contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Requests sent by this thread inside the block end `seconds` from now."""
    _request.deadline = time.monotonic() + seconds
    try:
        yield
    finally:
        _request.deadline = None


@dataclass(slots=True)
class FetchPolicy:
    """Limits of every request (see the module docstring)."""

    timeout_seconds: float = 20.0
    max_bytes: int = 5 * 2**20
    max_redirects: int = 5
    attempts: int = 3
    backoff_seconds: float = 0.5
    per_host: int = 2
    host_delay_seconds: float = 1.0
    allow_private: bool = False
    respect_robots: bool = True
    user_agent: str = USER_AGENT


# NAT64 prefixes whose last 32 bits are an IPv4 address: the well-known one (RFC 6052) and the
# local-use one (RFC 8215, used with /96 sub-prefixes).
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))
# IPv4-compatible addresses (::a.b.c.d, RFC 4291 2.5.5.1, deprecated but still routed by some
# stacks); :: and ::1 fall in it too and are refused through their embedded 0.0.0.x.
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries: IPv4-mapped, IPv4-compatible, NAT64, 6to4
    and Teredo (server and client); none for any other address."""
    found = [ip.ipv4_mapped, ip.sixtofour, *(ip.teredo or ())]
    if ip in _IPV4_COMPATIBLE or any(ip in net for net in _NAT64):
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return [address for address in found if address is not None]


def is_public_address(address: str) -> bool:
    """True when an address (IPv4 or IPv6, an IPv6 zone allowed) is global and not multicast,
    and so is every IPv4 address it carries (a NAT64 or 6to4 form of 169.254.169.254 reaches
    the same host as the address itself). Raises ValueError for text that is no address."""
    ip = ipaddress.ip_address(address.split("%")[0])
    inner = embedded_ipv4(ip) if isinstance(ip, ipaddress.IPv6Address) else []
    return all(each.is_global and not each.is_multicast for each in (ip, *inner))


def check_host(url: str, allow_private: bool) -> None:
    """Refuse a URL that is not http(s) or whose host resolves to a non-public address.

    Raises FetchError (kind 'scheme', 'dns' or 'private').
    """
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a port out of range
    except ValueError as exc:  # 'http://[::1': a bracket left open
        raise FetchError("scheme", f"not a valid URL: {url[:200]}") from exc
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise FetchError("scheme", f"not an http(s) URL: {url[:200]}")
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, port or 80, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchError("dns", f"cannot resolve {parts.hostname}: {exc}") from exc
    for info in infos:
        if not is_public_address(str(info[4][0])):
            raise FetchError("private", f"{parts.hostname} resolves to a non-public address "
                             f"({info[4][0]}); refused")


@dataclass
class Fetcher:
    """One HTTP client with the policy's limits, shared by the threads of a sync."""

    policy: FetchPolicy = field(default_factory=FetchPolicy)

    def __post_init__(self) -> None:
        self._client = httpx.Client(
            timeout=self.policy.timeout_seconds, follow_redirects=False,
            headers={"User-Agent": self.policy.user_agent}, transport=_DeadlineTransport(),
        )
        self._lock = threading.Lock()
        self._slots: dict[str, threading.Semaphore] = defaultdict(
            lambda: threading.Semaphore(self.policy.per_host))
        self._last: dict[str, float] = {}
        self._robots: dict[str, urllib.robotparser.RobotFileParser | None] = {}
        self.requests = 0  # every request sent, redirects and retries included
        self.not_modified = 0

    def close(self) -> None:
        """Close the connections."""
        self._client.close()

    @contextmanager
    def _host_turn(self, host: str) -> Iterator[None]:
        with self._lock:
            slot = self._slots[host]
        with slot:
            with self._lock:
                wait = self._last.get(host, 0.0) + self.policy.host_delay_seconds
                now = time.monotonic()
                self._last[host] = max(now, wait)
            if wait > now:
                time.sleep(wait - now)
            yield

    def get(self, url: str, *, etag: str | None = None,
            last_modified: str | None = None) -> Fetched:
        """GET with the policy's limits; 304 when the kept validators still hold.

        Raises FetchError: kinds scheme, dns, private, timeout, connect, http <status>,
        too-many-redirects, too-large.
        """
        headers = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        retrying = Retrying(
            stop=stop_after_attempt(self.policy.attempts),
            wait=wait_exponential(multiplier=self.policy.backoff_seconds),
            retry=retry_if_exception(lambda exc: isinstance(exc, _Retryable)),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._follow(url, headers)
        except _Retryable as exc:
            raise exc.error from None
        raise AssertionError("unreachable")  # pragma: no cover - reraise=True

    def _follow(self, url: str, headers: dict[str, str]) -> Fetched:
        current = url
        for _ in range(self.policy.max_redirects + 1):
            check_host(current, self.policy.allow_private)
            response = self._one(current, headers)
            if isinstance(response, Fetched):
                return response
            current = response
        raise FetchError("too-many-redirects",
                         f"more than {self.policy.max_redirects} redirects from {url}")

    def _one(self, url: str, headers: dict[str, str]) -> Fetched | str:
        """One request: its result, or the target URL of a redirect."""
        host = urlsplit(url).hostname or ""
        with self._host_turn(host):
            with self._lock:
                self.requests += 1
            try:
                with (_deadline(self.policy.timeout_seconds),
                      self._client.stream("GET", url, headers=headers) as response):
                    if response.has_redirect_location:  # is_redirect counts 304 too
                        return urljoin(url, response.headers.get("location", ""))
                    if response.status_code == 304:
                        with self._lock:
                            self.not_modified += 1
                        return Fetched(url=url, status=304)
                    if response.status_code >= 500:
                        raise _Retryable(FetchError(
                            f"http {response.status_code}", f"HTTP {response.status_code}"))
                    if response.status_code >= 400:
                        raise FetchError(f"http {response.status_code}",
                                         f"HTTP {response.status_code}")
                    declared = response.headers.get("content-length", "")
                    if declared.isdigit() and int(declared) > self.policy.max_bytes:
                        raise FetchError("too-large", f"body of {int(declared):,} bytes is over "
                                         f"the {self.policy.max_bytes:,}-byte limit")
                    body = bytearray()
                    for block in response.iter_bytes():
                        body += block
                        if len(body) > self.policy.max_bytes:
                            raise FetchError("too-large", f"body is over the "
                                             f"{self.policy.max_bytes:,}-byte limit")
                    return Fetched(
                        url=url, status=response.status_code, body=bytes(body),
                        content_type=response.headers.get("content-type", ""),
                        charset=response.charset_encoding,
                        etag=response.headers.get("etag"),
                        last_modified=response.headers.get("last-modified"),
                    )
            except httpx.TimeoutException as exc:
                raise _Retryable(FetchError("timeout", "timed out: no complete answer within "
                                            f"{self.policy.timeout_seconds:g} s")) from exc
            except httpx.TransportError as exc:
                raise _Retryable(FetchError("connect", f"cannot connect: {exc}")) from exc

    def allowed_by_robots(self, url: str) -> bool:
        """True when the host's robots.txt lets our user agent fetch `url` (or has none)."""
        if not self.policy.respect_robots:
            return True
        try:
            parts = urlsplit(url)
        except ValueError:  # not a URL at all: the fetch itself refuses it, by name
            return True
        root = f"{parts.scheme}://{parts.netloc}"
        with self._lock:
            known = root in self._robots
            parser = self._robots.get(root)
        if not known:
            parser = None
            try:
                fetched = self.get(f"{root}/robots.txt")
                if fetched.status == 200:
                    parser = urllib.robotparser.RobotFileParser()
                    parser.parse(fetched.body.decode("utf-8", "replace").splitlines())
            except FetchError:
                parser = None  # no robots.txt (404) or none reachable: nothing forbidden
            with self._lock:
                self._robots[root] = parser
        return parser is None or parser.can_fetch(self.policy.user_agent, url)
