"""Pure parts of publish: URL parsing, the key scheme, rate parsing (no server needed)."""

from __future__ import annotations

import pytest

from pipeline.publish import layout
from pipeline.publish.cli import parse_rate
from pipeline.publish.listing import human_size
from pipeline.publish.s3url import S3Url, parse_s3_url
from router.errors import UserError

SHA = "ab" * 32


def test_parse_s3_url_bucket_and_prefix() -> None:
    url = parse_s3_url("s3://models/edgepack/sub/")
    assert url == S3Url("models", "edgepack/sub")
    assert url.key("r", "t", "f.json") == "edgepack/sub/r/t/f.json"
    assert parse_s3_url("s3://models").key("x") == "x"


@pytest.mark.parametrize(
    "text", ["models/edgepack", "s3://", "s3://UPPER/x", "s3://ok-bucket/a//b", "s3://okay/../x"]
)
def test_parse_s3_url_rejects_bad_urls(text: str) -> None:
    with pytest.raises(UserError) as err:
        parse_s3_url(text)
    assert text in err.value.message and "\n" not in err.value.message


def test_recipe_url_splits_off_the_recipe() -> None:
    base, recipe = parse_s3_url("s3://models/edgepack/sensitivity-minilm").parent_and_name()
    assert (base, recipe) == (S3Url("models", "edgepack"), "sensitivity-minilm")
    with pytest.raises(UserError):
        parse_s3_url("s3://models").parent_and_name()


def test_keys_round_trip_through_their_parsers() -> None:
    base = S3Url("b", "pre/fix")
    key = layout.manifest_key(base, "rec", "jetson-orin", SHA)
    assert key == f"pre/fix/rec/jetson-orin/{SHA}/manifest.json"
    assert layout.parse_manifest_key(key) == layout.VersionRef("rec", "jetson-orin", SHA)
    # a manifest.json nested inside a bundle's folder is a file, not a version
    assert layout.parse_manifest_key(f"pre/rec/t/{SHA}/triton/manifest.json") is None
    channel = layout.channel_key(base, "rec", "cpu", "stable")
    assert channel == "pre/fix/rec/cpu/channels/stable.json"
    assert layout.parse_channel_key(channel) == ("rec", "cpu", "stable")


@pytest.mark.parametrize("name", ["", "a/b", "..", "x y", "-lead"])
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(UserError):
        layout.check_name("channel", name)


def test_parse_rate_and_sizes() -> None:
    assert parse_rate("20MB") == 20_000_000
    assert parse_rate("1.5g") == 1_500_000_000
    assert parse_rate("500KB/s") == 500_000
    assert parse_rate(None) is None
    with pytest.raises(UserError):
        parse_rate("fast")
    assert human_size(999) == "999 B"
    assert human_size(40_000_000) == "40.0 MB"
