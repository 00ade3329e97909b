"""A small web server of our own on 127.0.0.1 serving feeds and article pages.

Used by the feed tests and `bench/feeds.py`; every route is data (`Page`), changeable while the
server runs, and every request is recorded. Conditional requests: each 200 carries an ETag (a
hash of the body) and an If-None-Match that matches gets a 304.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Page:
    """What one path serves: a body with its type, or a status, a redirect, a stall."""

    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    status: int = 200
    location: str = ""  # a redirect's target (status 301/302)
    delay: float = 0.0  # seconds before answering (a timeout test)
    etag: bool = True  # answer If-None-Match with 304 when the body is unchanged
    drip: float = 0.0  # seconds between the body's bytes, sent one at a time (a slow server)
    drip_headers: bool = False  # drip the status line and headers too


@dataclass
class Web:
    """The server's routes (mutable while it runs) and every request it saw."""

    port: int = 0
    routes: dict[str, Page] = field(default_factory=dict)
    seen: list[tuple[str, int]] = field(default_factory=list)  # (path, status answered)

    def url(self, path: str) -> str:
        """The absolute URL of a path on this server."""
        return f"http://127.0.0.1:{self.port}{path}"

    def statuses(self, since: int = 0) -> list[int]:
        """The statuses answered since request number `since`."""
        return [status for _, status in self.seen[since:]]


def rss(items: list[tuple[str, str, str]], title: str = "Kestle Post", build: str = "1") -> bytes:
    """An RSS 2.0 feed of (guid, link, title) items; `build` changes the feed's bytes."""
    entries = "".join(
        f"<item><guid>{guid}</guid><link>{link}</link><title>{item_title}</title>"
        f"<pubDate>Mon, 06 Mar 2023 10:00:00 GMT</pubDate>"
        f"<description>Summary of {item_title} from the feed itself.</description></item>"
        for guid, link, item_title in items
    )
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>{title}</title><link>http://example.test/</link>"
            f"<lastBuildDate>{build}</lastBuildDate>{entries}</channel></rss>").encode()


def atom(items: list[tuple[str, str, str]], title: str = "Varrow Herald") -> bytes:
    """An Atom feed of (id, link, title) entries."""
    entries = "".join(
        f'<entry><id>{guid}</id><link href="{link}"/><title>{item_title}</title>'
        f"<updated>2023-03-07T09:00:00Z</updated><summary>About {item_title}.</summary></entry>"
        for guid, link, item_title in items
    )
    return (f'<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
            f"<title>{title}</title><id>urn:varrow</id><updated>2023-03-07T09:00:00Z</updated>"
            f"{entries}</feed>").encode()


def article_page(title: str, paragraphs: list[str], charset: str = "utf-8") -> bytes:
    """An article page trafilatura finds the main text of."""
    body = "".join(f"<p>{text}</p>" for text in paragraphs)
    return (f'<html><head><meta charset="{charset}"><title>{title}</title></head><body>'
            f"<nav>Home | World | Sport</nav><article><h1>{title}</h1>{body}</article>"
            f"<footer>Copyright</footer></body></html>").encode(charset, errors="replace")


@contextmanager
def serving() -> Iterator[Web]:
    """A server on a free port of 127.0.0.1, stopped when the block ends."""
    state = Web()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args: object) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            page = state.routes.get(self.path)
            if page is None:
                self._answer(404, b"not found", "text/plain")
                return
            if page.delay:
                time.sleep(page.delay)
            if page.location:
                state.seen.append((self.path, page.status))  # before the client can read it
                self.send_response(page.status)
                self.send_header("Location", page.location)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            tag = '"' + hashlib.sha256(page.body).hexdigest()[:16] + '"'
            if page.etag and page.status == 200 and self.headers.get("If-None-Match") == tag:
                state.seen.append((self.path, 304))
                self.send_response(304)
                self.send_header("ETag", tag)
                self.end_headers()
                return
            self._answer(page.status, page.body, page.content_type,
                         {"ETag": tag} if page.etag else {})

        def _answer(self, status: int, body: bytes, content_type: str,
                    headers: dict[str, str] | None = None) -> None:
            state.seen.append((self.path, status))  # recorded before the client can read it
            page = state.routes.get(self.path)
            if page is not None and page.drip:
                self._drip(page, status, body, content_type, headers or {})
                return
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(body)

        def _drip(self, page: Page, status: int, body: bytes, content_type: str,
                  headers: dict[str, str]) -> None:
            """Send one byte every `page.drip` seconds until done or the client hangs up."""
            head = (f"HTTP/1.1 {status} OK\r\nContent-Type: {content_type}\r\n"
                    f"Content-Length: {len(body)}\r\n"
                    + "".join(f"{key}: {value}\r\n" for key, value in headers.items())
                    + "\r\n").encode()
            self.close_connection = True
            with contextlib.suppress(BrokenPipeError, ConnectionResetError, OSError):
                if not page.drip_headers:
                    self.wfile.write(head)
                    self.wfile.flush()
                for byte in (head if page.drip_headers else b"") + body:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(page.drip)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
