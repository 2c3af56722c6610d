"""Patterns: named regexes (RE2, linear time whatever a config holds) and their validators.

One RE2 Set pass says which patterns match a text at all; a pattern without checks fires
then, one with checks runs alone and validates its candidates (the group `v`, else the
whole match) until one passes: its letters and digits must have one of `lengths`, start
with one of `prefixes` and pass the check-digit scheme (python-stdnum), so an employee-ID
format does not flag every number of that length.
The same pass reports the hints other rules ask for (hosts.py: address shapes).
The Set fails closed as prefilter.py's does: an always-matching canary missing from its
result (RE2 out of memory) means every pattern is tried.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import re2
from stdnum import damm, luhn, verhoeff
from stdnum.iso7064 import mod_11_2, mod_11_10, mod_37_2, mod_37_36, mod_97_10

from router.config import PatternRule

CANARY = r"\z"
SCHEMES: dict[str, Callable[[str], bool]] = {
    "luhn": luhn.is_valid,
    "mod97": mod_97_10.is_valid,
    "iso7064_mod11_2": mod_11_2.is_valid,
    "iso7064_mod11_10": mod_11_10.is_valid,
    "iso7064_mod37_2": mod_37_2.is_valid,
    "iso7064_mod37_36": mod_37_36.is_valid,
    "verhoeff": verhoeff.is_valid,
    "damm": damm.is_valid,
}


def _options(max_mem: int = 64 << 20) -> re2.Options:
    options = re2.Options()
    options.max_mem = max_mem
    options.log_errors = False
    return options


class Check:
    """What a pattern's value must pass (None from `of` when nothing is checked)."""

    def __init__(self, rule: PatternRule) -> None:
        self.lengths = frozenset(rule.lengths)
        self.prefixes = tuple(p.upper() for p in rule.prefixes)
        self.scheme = SCHEMES[rule.validator] if rule.validator else None

    @classmethod
    def of(cls, rule: PatternRule) -> Check | None:
        return cls(rule) if rule.validator or rule.lengths or rule.prefixes else None

    def __call__(self, value: str) -> bool:
        chars = "".join(ch for ch in value if ch.isalnum()).upper()
        if self.lengths and len(chars) not in self.lengths:
            return False
        if self.prefixes and not chars.startswith(self.prefixes):
            return False
        if self.scheme is None:
            return True
        try:
            return bool(self.scheme(chars))
        except Exception:  # a scheme that refuses the characters: not a valid value
            return False


class Patterns:
    """The patterns, and `hints`: more RE2 patterns whose presence the same pass reports
    (hosts.py's address shapes), so a text pays one Set pass for both."""

    def __init__(
        self, rules: list[PatternRule], first_label: int, hints: Sequence[str] = ()
    ) -> None:
        options = _options()
        self.regexes = [re2.compile(rule.regex, options) for rule in rules]
        self.checks = [Check.of(rule) for rule in rules]
        self.first_label = first_label
        self.set = re2.Set.SearchSet(options)
        for pattern in [*(rule.regex for rule in rules), *hints, CANARY]:
            self.set.Add(pattern)
        self.set.Compile()
        self.hints = range(len(rules), len(rules) + len(hints))
        self.canary = len(rules) + len(hints)
        self.everything = [*range(len(rules)), *self.hints]

    def __bool__(self) -> bool:
        return self.canary > 0

    def labels(self, text: str) -> tuple[set[int], set[int]]:
        """Labels of the patterns that fire, and which hints (0, 1, ...) are present."""
        matched = self.set.Match(text.encode("utf-8", "surrogatepass"))
        passed = self.canary in matched
        if not passed:  # the pass failed (RE2 out of memory): try each pattern, every hint
            matched = self.everything
        found: set[int] = set()
        hints: set[int] = set()
        for i in matched:
            if i in self.hints:
                hints.add(i - self.hints.start)
            elif i != self.canary and self._fires(i, text, passed):
                found.add(self.first_label + i)
        return found, hints

    def _fires(self, i: int, text: str, matched: bool) -> bool:
        check, regex = self.checks[i], self.regexes[i]
        if check is None:
            return matched or regex.search(text) is not None
        named = "v" in regex.groupindex
        return any(check((named and m.group("v")) or m.group(0)) for m in regex.finditer(text))
