"""The feed benchmark's server setup (the timed sync itself runs in bench.feeds)."""

from __future__ import annotations

import httpx

from bench.feeds import serve_feeds
from bench.localweb import serving


def test_every_feed_lists_its_items_and_every_item_serves_a_page():
    texts = ["First paragraph.\nSecond paragraph.", "Another story.\nWith two lines."]
    with serving() as web:
        urls = serve_feeds(web, texts, feeds=3, items=4)
        assert urls == [web.url(f"/feed{n}.xml") for n in range(3)]
        assert sum(path.startswith("/feed1/") for path in web.routes) == 4
        feed = httpx.get(urls[2]).text
        assert feed.count("<item>") == 4 and "Outlet 2" in feed
        page = httpx.get(web.url("/feed2/item3"))
        assert page.status_code == 200 and "Another story." in page.text  # story 11 → text 1
