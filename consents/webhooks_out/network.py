"""Where webhook requests may go, and the one request an attempt makes: to the address that was
checked (loopback, private, link-local and metadata addresses are refused unless a setting
allows them)."""

from __future__ import annotations

import http.client
import ipaddress
import logging
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

logger = logging.getLogger(__name__)

# What is read of a receiver's answer: only its status matters.
MAX_RESPONSE_BYTES = 64 * 1024


class UnsafeAddress(ValidationError):
    """The URL is not one Assent sends to (scheme, or an address inside this network)."""


def _address_allowed(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    # ``is_global`` is False for loopback, private (RFC 1918, fc00::/7), link-local (and so the
    # cloud metadata address 169.254.169.254), shared (100.64/10), reserved and unspecified.
    return address.is_global and not address.is_multicast


def check_url(url: str) -> None:
    """Refuse a URL Assent must not send to; raises ``UnsafeAddress`` naming the ``url`` field."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    allowed = ("https",) if settings.WEBHOOK_REQUIRE_HTTPS else ("https", "http")
    if scheme not in allowed:
        raise UnsafeAddress({"url": "The endpoint must be an https:// URL."})
    if not parts.hostname or parts.username or parts.password:
        raise UnsafeAddress({"url": "Give a URL with a host name and no credentials in it."})
    resolve(url)


def resolve(url: str) -> str:
    """The address to connect to: every address the host resolves to must be allowed (a name
    with one public and one private address is refused), and the first is used."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    except ValueError as exc:
        raise UnsafeAddress({"url": "The port is not a number."}) from exc
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeAddress({"url": f"The host {host!r} does not resolve."}) from exc
    addresses = [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]
    if not addresses:
        raise UnsafeAddress({"url": f"The host {host!r} does not resolve."})
    if not settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES:
        for address in addresses:
            if not _address_allowed(address):
                raise UnsafeAddress(
                    {
                        "url": "This URL leads to a loopback, private, link-local or metadata "
                        f"address ({address}): Assent does not send there."
                    }
                )
    return str(addresses[0])


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the address that was checked, whatever the name resolves to now."""

    def __init__(self, host: str, port: int, *, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, *, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        # The certificate is checked against the URL's host name, not the address.
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


@dataclass
class Answer:
    status: int
    retry_after: str | None


def post(url: str, body: bytes, headers: dict[str, str]) -> Answer:
    """One POST, no redirect followed, within ``WEBHOOK_TIMEOUT`` for each step."""
    address = resolve(url)
    parts = urlsplit(url)
    https = parts.scheme.lower() == "https"
    port = parts.port or (443 if https else 80)
    cls = _PinnedHTTPSConnection if https else _PinnedHTTPConnection
    connection = cls(parts.hostname or "", port, address=address, timeout=settings.WEBHOOK_TIMEOUT)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request("POST", target, body=body, headers=headers)
        response = connection.getresponse()
        response.read(MAX_RESPONSE_BYTES)
        return Answer(response.status, response.getheader("Retry-After"))
    finally:
        connection.close()
