"""router/offload.py: slices of a long text cover it, and anything of at most the overlap's
length lies whole in one slice (so a sliced scan finds what a whole one does)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from router.offload import slices


@given(
    length=st.integers(0, 5000),
    size=st.integers(20, 400),
    overlap=st.integers(1, 19),
    data=st.data(),
)
def test_every_span_up_to_the_overlap_is_whole_in_a_slice(length, size, overlap, data) -> None:
    text = "".join(chr(0x61 + i % 26) + chr(0x30 + i % 10) for i in range(length))[:length]
    parts = list(slices(text, size, overlap))
    assert all(len(p) <= size for p in parts)
    span = data.draw(st.integers(1, overlap))
    start = data.draw(st.integers(0, max(0, length - span)))
    needle = text[start : start + span]
    starts = [i * (size - overlap) for i in range(len(parts))] if length > size else [0]
    assert any(s <= start and start + span <= s + size for s in starts)
    assert any(needle in p for p in parts)
    assert "".join(p[: size - overlap] for p in parts[:-1]) + parts[-1] == text or length <= size
