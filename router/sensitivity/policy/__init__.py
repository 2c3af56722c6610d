"""The organisation's own rules (`classifier.sensitivity`): terms, patterns, hosts, allow.

`terms.py` + `hosts.py` share one Aho-Corasick automaton (`vocabulary.py`): one pass over
the case-folded text finds every configured word and domain, however many there are;
`patterns.py` runs the named regexes as one RE2 Set pass, then their validators;
`allow.py` hides published values from the rules; `rules.py` puts them together.
Topics (matched by meaning) need the model and live beside it.
"""
