"""The organisation's rules as one step: which entries fire on a request's texts.

Labels are `term:NAME`, `host:NAME`, `pattern:NAME` in config order (terms, patterns,
hosts). Words and domains are found in one automaton pass over the case-folded text,
patterns and the shapes of IP addresses in one RE2 Set pass; only a text with an
address shape is searched for addresses.
"""

from __future__ import annotations

from collections.abc import Sequence

from router.config import SensitivityPolicy
from router.sensitivity.policy.allow import Allow
from router.sensitivity.policy.hosts import HINTS as ADDRESS_HINTS
from router.sensitivity.policy.hosts import Networks, add_domains
from router.sensitivity.policy.patterns import Patterns
from router.sensitivity.policy.terms import add_terms, folded
from router.sensitivity.policy.vocabulary import Vocabulary


class PolicyRules:
    def __init__(self, policy: SensitivityPolicy) -> None:
        self.labels = [
            *(f"term:{t.name}" for t in policy.terms),
            *(f"pattern:{p.name}" for p in policy.patterns),
            *(f"host:{h.name}" for h in policy.hosts),
        ]
        first_pattern = len(policy.terms)
        first_host = first_pattern + len(policy.patterns)
        self.vocabulary = Vocabulary()
        add_terms(self.vocabulary, policy.terms, 0)
        add_domains(self.vocabulary, policy.hosts, first_host)
        self.vocabulary.compile()
        self.networks = Networks(policy.hosts, first_host)
        hints = ADDRESS_HINTS if self.networks else ()
        self.patterns = Patterns(policy.patterns, first_pattern, hints)
        self.allow = Allow(policy.allow) if policy.allow else None

    def __bool__(self) -> bool:
        return bool(self.labels)

    def scan(self, texts: Sequence[str]) -> tuple[str, ...]:
        """Labels of the entries that fire on any of `texts`, in config order."""
        if not self.labels:
            return ()
        found: set[int] = set()
        wanted = len(self.labels)
        for text in texts:
            if self.vocabulary:
                found |= self.vocabulary.labels(folded(text))
            if self.patterns:  # the patterns' Set pass also says where addresses may be
                fired, hints = self.patterns.labels(text)
                found |= fired
                if hints:
                    found |= self.networks.labels(text, hints)
            if len(found) == wanted:
                break
        return tuple(self.labels[i] for i in sorted(found))

    def masked(self, texts: Sequence[str]) -> list[str] | None:
        """`texts` with the allowed values blanked, or None when none holds one."""
        return None if self.allow is None else self.allow.masked(texts)
