"""Hosts: internal domains and IP networks, wherever a host name is written.

A domain is found in URLs, e-mail addresses and bare host names alike, as the end of a
host name: "corp.example.com" matches it and "wiki.corp.example.com", "a@corp.example.com",
"https://git.corp.example.com:8443/x", not "notcorp.example.com" nor
"corp.example.com.evil.io"; "*.corp.example.com" matches the subdomains only.
Internationalised domains are looked up in both spellings (Unicode and `xn--`).
IP addresses (IPv4 dotted quads, IPv6 with two colons or more, in URLs or bare) are
parsed with `ipaddress` and checked against the networks.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re

from router.config import HostRule
from router.normalize import normalize
from router.sensitivity.policy.vocabulary import Edges, Vocabulary

# What every address the regexes below find contains (RE2, for patterns.py's Set pass):
# four dotted numbers; two colons with only hex digits between them ("10:30:00" too).
HINTS = (r"\d\.\d{1,3}\.\d{1,3}\.\d", r"[0-9A-Fa-f]*:[0-9A-Fa-f]*:")
IPV4 = re.compile(r"(?a)(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?!\d|\.\d)")
IPV6 = re.compile(r"(?ai)(?<![\w:.])[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7}(?:[.\d]{7,15})?(?![\w:])")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def host_char(ch: str) -> bool:
    return ch.isalnum() or ch == "-"


def _ends_host(text: str, end: int) -> bool:
    """Nothing of a host name continues after `end` (a sentence's full stop may)."""
    if end >= len(text):
        return True
    if text[end] == ".":
        return end + 1 >= len(text) or not host_char(text[end + 1])
    return not host_char(text[end])


def domain(text: str, start: int, end: int) -> bool:
    """The domain itself or a subdomain: what comes before is not part of a label."""
    return (start == 0 or not host_char(text[start - 1])) and _ends_host(text, end)


def subdomain(text: str, start: int, end: int) -> bool:
    """Only below the domain: a label and a dot come before it."""
    below = start >= 2 and text[start - 1] == "." and host_char(text[start - 2])
    return below and _ends_host(text, end)


def domain_keys(name: str) -> tuple[set[str], Edges]:
    """The spellings `name` is looked up by, and its edge rule."""
    edges = subdomain if name.startswith("*.") else domain
    bare = name.removeprefix("*.")
    unicode_form = normalize(bare).casefold()
    keys = {unicode_form, bare.lower().encode("idna").decode("ascii")}
    with contextlib.suppress(UnicodeError):  # an xn-- name given: its Unicode spelling too
        keys.add(bare.encode("ascii").decode("idna").casefold())
    return keys, edges


def add_domains(vocabulary: Vocabulary, rules: list[HostRule], first_label: int) -> None:
    for i, rule in enumerate(rules):
        for name in rule.domains:
            keys, edges = domain_keys(name)
            for key in keys:
                vocabulary.add(key, first_label + i, edges)


class Networks:
    """Which host rules' networks hold an IP address written in a text."""

    def __init__(self, rules: list[HostRule], first_label: int) -> None:
        self.networks: list[tuple[Network, int]] = [
            (ipaddress.ip_network(cidr), first_label + i)
            for i, rule in enumerate(rules)
            for cidr in rule.cidrs
        ]
        self.v6 = any(net.version == 6 for net, _ in self.networks)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def labels(self, text: str, hints: set[int]) -> set[int]:
        """Labels of the networks that hold an address in `text`; `hints`: which of `HINTS`
        the text contains (no address without its hint)."""
        found: set[int] = set()
        for address in self._addresses(text, 0 in hints, 1 in hints and self.v6):
            mapped = getattr(address, "ipv4_mapped", None)
            for net, label in self.networks:
                if address in net or (mapped is not None and mapped in net):
                    found.add(label)
        return found

    def _addresses(
        self, text: str, v4: bool, v6: bool
    ) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        out: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
        for quad in IPV4.findall(text) if v4 else ():
            octets = [int(part) for part in quad.split(".")]  # "010" is 10, as most tools read it
            if max(octets) <= 255:
                out.append(ipaddress.IPv4Address(bytes(octets)))
        for candidate in IPV6.findall(text) if v6 else ():
            try:
                out.append(ipaddress.IPv6Address(candidate))
            except ValueError:
                continue
        return out
