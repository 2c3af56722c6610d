"""Sensitivity classification: the header rule, validated detectors, the ONNX model.

Confidential if any of them says so, public only if none does; errors fail closed.
Layout: `detector.py` (the Detector type), one module per detector under `detectors/`
(pattern + validator + context words, tests beside it in tests/test_router_detectors.py),
`registry.py` (which detectors exist), `prefilter.py` + `hints.py` (one RE2 pass decides
which detectors can fire on a text), `header.py`, `encodings.py` + `views.py` (what rules
and model read: text normalised by `router/normalize.py`, and decoded; a long text a piece
at a time), `windows.py` (every part of a long text in model-sized windows, bounded),
`model.py` (ONNX Runtime + tokenizer), `batching.py` (micro-batches concurrent requests
into one run; a long prompt's windows in a lane of their own), `scores.py` (the model's
scores of windows already read), `policy/` (the organisation's own terms, patterns, hosts
and allowed values: `classifier.sensitivity`), `topics.py` (its topics, on the model's
pooled embedding of each window), `classifier.py` (combines).
"""
