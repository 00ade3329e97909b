"""The fetcher's limits, each against the kind of input that once got past it: addresses that
hide a private IPv4 address inside an IPv6 one, and servers that answer too slowly to finish."""

from __future__ import annotations

import pytest

from index.feeds.fetch import is_public_address


@pytest.mark.parametrize("address", [
    "169.254.169.254", "10.0.0.1", "127.0.0.1", "::1", "fe80::1%eth0", "ff02::1",
    "64:ff9b::a9fe:a9fe",  # NAT64 (RFC 6052) of 169.254.169.254
    "64:ff9b::10.0.0.1",
    "64:ff9b:1::a9fe:a9fe",  # local-use NAT64 (RFC 8215)
    "::ffff:169.254.169.254",  # IPv4-mapped
    "::ffff:127.0.0.1",
    "::169.254.169.254",  # IPv4-compatible (deprecated, still routed by some stacks)
    "::10.0.0.1",
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "2001:0:4136:e378:8000:63bf:5601:5601",  # Teredo, client 169.254.169.254
])
def test_an_address_that_is_or_hides_a_private_one_is_refused(address: str):
    assert not is_public_address(address)


@pytest.mark.parametrize("address", [
    "8.8.8.8", "2606:4700:4700::1111", "64:ff9b::8.8.8.8", "::ffff:8.8.8.8",
    "2002:808:808::1",  # 6to4 of 8.8.8.8
])
def test_a_public_address_passes_in_every_form(address: str):
    assert is_public_address(address)
