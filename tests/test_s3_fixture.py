"""The suite's SeaweedFS gives each bucket volumes of its own, up to -volume.max: a test
suite that creates more buckets than that over a session only works if each is removed."""

from __future__ import annotations

from tests.fixtures.s3 import VOLUME_MAX, SeaweedS3


def test_removed_buckets_free_their_volumes(s3_server: SeaweedS3) -> None:
    client = s3_server.client(retries=0)
    for _ in range(VOLUME_MAX + 4):
        name = s3_server.new_bucket()
        client.put_object(Bucket=name, Key="a/b", Body=b"x" * 100)
        s3_server.remove_bucket(name)
        assert name not in [b["Name"] for b in client.list_buckets()["Buckets"]]
