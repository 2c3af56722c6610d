"""Publish/fetch throughput against a local SeaweedFS S3 server, edgepack vs plain boto3.

Variants, interleaved round-robin on the same server and the same ≥200 MB bundle:
  edgepack publish   publish_bundle(): listing/head checks, each file sha256-checked just before
                     it is handed to one transfer manager for the whole bundle (16 MiB parts,
                     8 in flight), manifest last
  boto3 upload loop  client.upload_file(path, bucket, key) per file, boto3 defaults
  edgepack fetch     fetch_bundle(): all files through one transfer manager, each sha256-verified
                     as it lands, then renamed into place
  boto3 download loop  client.download_file per file, boto3 defaults, no verification
  no-op re-publish   publish_bundle() of the already-published bundle (in process), and the
                     whole `edgepack publish … --quiet` command (interpreter start included);
                     `edgepack --help` alone (cli_help) is the start-up share of that
  boto3_start        `python -c "import boto3; …client('s3')"`: the floor of any boto3 CLI
  verify_only        verify_dist() alone: the size of the sha256 work that edgepack publish and
                     fetch do (overlapped with the transfers) and the boto3 loops skip

    .venv/bin/python benchmarks/publish.py --rounds 3 --mb 210
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console

from benchmarks import common
from pipeline.manifest import build_manifest, verify_dist, write_manifest
from pipeline.publish.client import make_client
from pipeline.publish.download import fetch_bundle
from pipeline.publish.progress import TransferProgress
from pipeline.publish.s3url import parse_s3_url
from pipeline.publish.upload import publish_bundle
from tests.fixtures.s3 import SeaweedS3

QUIET = TransferProgress(Console(stderr=True), quiet=True)
MB = 1_000_000


def make_big_bundle(root: Path, total_mb: int) -> tuple[Path, int]:
    """A bundle shaped like a real one: three model files and ~20 small ones."""
    big = {"onnx/model.onnx": 0.55, "onnx/model.int8.onnx": 0.3, "onnx/model.qdq.onnx": 0.15}
    sizes = {rel: int(total_mb * MB * share) for rel, share in big.items()}
    sizes |= {f"triton/files/f{i:02d}.json": 20_000 + 997 * i for i in range(20)}
    for rel, size in sizes.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as fh:
            for start in range(0, size, 1 << 24):
                fh.write(os.urandom(min(1 << 24, size - start)))
    manifest = build_manifest(root, recipe={"name": "bench", "sha256": "0" * 64}, target="cpu",
                              stages={}, metrics={})  # fmt: skip
    write_manifest(root, manifest)
    return root, sum(sizes.values())


BOTO3_START = "import boto3; boto3.session.Session().client('s3')"


def variants(server: SeaweedS3, bucket: str, dist: Path, dest: Path) -> dict:
    """Each variant: a call that returns its wall seconds (in this order every round)."""
    ours, plain = make_client(), server.client(retries=3)
    files = [p for p in sorted(dist.rglob("*")) if p.is_file()]
    url = parse_s3_url(f"s3://{bucket}/ep")
    timed = common.timed

    def plain_up() -> None:
        for p in files:
            plain.upload_file(str(p), bucket, f"plain/{p.relative_to(dist).as_posix()}")

    def plain_down() -> None:
        for p in files:
            target = dest / "b" / p.relative_to(dist)
            target.parent.mkdir(parents=True, exist_ok=True)
            plain.download_file(bucket, f"plain/{p.relative_to(dist).as_posix()}", str(target))

    def ours_down() -> None:
        fetch_bundle(ours, url.child("bench"), dest / "e", target="cpu", version=_version(dist),
                     progress=QUIET)  # fmt: skip

    def publish() -> None:
        publish_bundle(ours, dist, url, progress=QUIET)

    cli = [str(Path(sys.executable).with_name("edgepack")), "publish", str(dist), "--to",
           str(url), "--quiet"]  # fmt: skip
    return {
        "edgepack_up": lambda: timed(publish),
        "boto3_up": lambda: timed(plain_up),
        "edgepack_down": lambda: timed(ours_down),
        "boto3_down": lambda: timed(plain_down),
        "noop": lambda: timed(publish),
        "noop_cli": lambda: timed(lambda: subprocess.run(cli, check=True, capture_output=True)),
        "cli_help": lambda: timed(
            lambda: subprocess.run([cli[0], "--help"], check=True, capture_output=True)
        ),
        "verify_only": lambda: timed(lambda: verify_dist(dist)),
        "boto3_start": lambda: timed(
            lambda: subprocess.run([sys.executable, "-c", BOTO3_START], check=True)
        ),
    }


def run(rounds: int, total_mb: int, workdir: Path) -> dict:
    with SeaweedS3(workdir / "s3") as server:
        os.environ.update({k: v for k, v in server.env().items() if k.startswith("AWS_")})
        bucket = server.new_bucket()
        dist, nbytes = make_big_bundle(workdir / "dist" / "bench-cpu", total_mb)
        dest = workdir / "out"

        def fresh(r: int) -> None:  # each round uploads into an empty bucket, fetches anew
            server.empty_bucket(bucket)
            shutil.rmtree(dest, ignore_errors=True)
            print(f"round {r}", file=sys.stderr)

        # round 0 warms up and is dropped
        times = common.round_robin(variants(server, bucket, dist, dest), rounds, 1, fresh)
        nfiles = sum(1 for p in dist.rglob("*") if p.is_file())
        return summarize(times, nbytes, nfiles, rounds)


def _version(dist: Path) -> str:
    return hashlib.sha256((dist / "manifest.json").read_bytes()).hexdigest()


def summarize(times: dict[str, list[float]], nbytes: int, nfiles: int, rounds: int) -> dict:
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "bundle_mb": round(nbytes / MB, 1),
        "files": nfiles,
        "rounds": rounds,
        "median_s": {k: round(v, 3) for k, v in med.items()},
        "all_s": {k: [round(x, 3) for x in v] for k, v in times.items()},
        "MBps": {
            k: round(nbytes / MB / med[k], 1)
            for k in ("edgepack_up", "boto3_up", "edgepack_down", "boto3_down")
        },
        "speedup_up": round(med["boto3_up"] / med["edgepack_up"], 2),
        "speedup_down": round(med["boto3_down"] / med["edgepack_down"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mb", type=int, default=210, help="bundle size in MB (>= 200)")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    load_before = common.loadavg()
    with tempfile.TemporaryDirectory(prefix="edgepack-bench-publish-") as tmp:
        result = run(args.rounds, args.mb, Path(tmp))
    result["loadavg_before"] = load_before
    result["loadavg_after"] = common.loadavg()
    result["cpus"] = os.cpu_count()
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
