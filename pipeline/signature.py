"""Manifest signatures: `manifest.json.sig` beside `manifest.json`, checked with a public key.

A bundle's files are pinned by manifest.json's sha256s and the manifest by its own sha256
(the version's name), but anyone who can write to the bucket can publish another manifest.
A signature by a key the bucket writers do not hold closes that gap: what is signed is a
short statement naming the manifest's sha256 and the key under an edgepack context, so the
same bytes work for Ed25519 keys and for AWS KMS (whose RAW messages are capped at 4 KB).

This module imports nothing from edgepack: it ships into device bundles as
`edgepack_signature.py`, where `python3 edgepack_signature.py --key KEY.pem` checks the
bundle it sits in (infer.py and build_engine.sh run it when EDGEPACK_PUBLIC_KEY is set).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
SIGNATURE = "manifest.json.sig"
CONTEXT = b"edgepack manifest signature v1\n"
ED25519 = "ED25519"
ECDSA = {"ECDSA_SHA_256": "SHA256", "ECDSA_SHA_384": "SHA384", "ECDSA_SHA_512": "SHA512"}
KEY_ENV = "EDGEPACK_PUBLIC_KEY"


class SignatureError(Exception):
    """The bundle is unsigned, tampered with, or signed by another key."""


def statement(manifest: bytes, key_id: str) -> bytes:
    """What a key signs: the context string, the manifest's sha256 (its version name) and
    the signer's name, so no field of the record can be changed without breaking it."""
    return CONTEXT + f"{hashlib.sha256(manifest).hexdigest()}\n{key_id}\n".encode()


def make_record(manifest: bytes, algorithm: str, key_id: str, signature: bytes) -> bytes:
    record = {
        "algorithm": algorithm,
        "key": key_id,
        "manifest_sha256": hashlib.sha256(manifest).hexdigest(),
        "signature": base64.b64encode(signature).decode(),
    }
    return (json.dumps(record, indent=2, sort_keys=True) + "\n").encode()


def parse_record(manifest: bytes, data: bytes | None) -> dict[str, Any]:
    """The record's fields with the signature decoded; refuses one made for another manifest."""
    if data is None:
        raise SignatureError(f"not signed (no {SIGNATURE})")
    try:
        record = json.loads(data)
        record["signature"] = base64.b64decode(record["signature"], validate=True)
        algorithm, key_id, named = record["algorithm"], record["key"], record["manifest_sha256"]
    except (ValueError, KeyError, TypeError):
        raise SignatureError(f"{SIGNATURE} is not a valid signature record") from None
    if not (isinstance(algorithm, str) and isinstance(key_id, str) and isinstance(named, str)):
        raise SignatureError(f"{SIGNATURE} is not a valid signature record")
    if named != hashlib.sha256(manifest).hexdigest():
        raise SignatureError(f"{SIGNATURE} was made for another {MANIFEST}")
    return record


def load_public_key(path: Path) -> Any:
    """An Ed25519 or EC public key from a PEM file (`edgepack keygen`, `edgepack public-key`)."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        key = load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise SignatureError(f"{path}: not a readable PEM public key ({exc})") from None
    if not isinstance(key, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey):
        raise SignatureError(f"{path}: expected an Ed25519 or EC public key")
    return key


def key_fingerprint(public_key: Any) -> str:
    """sha256 of the key's SubjectPublicKeyInfo: names a local key in signature records."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    der = public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(der).hexdigest()


def verify_with_public_key(manifest: bytes, data: bytes | None, public_key: Any) -> dict:
    """Check `data` (the signature record) over `manifest`; raises SignatureError."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    record = parse_record(manifest, data)
    algorithm, signature = record["algorithm"], record["signature"]
    try:
        if isinstance(public_key, ed25519.Ed25519PublicKey) and algorithm == ED25519:
            public_key.verify(signature, statement(manifest, record["key"]))
        elif isinstance(public_key, ec.EllipticCurvePublicKey) and algorithm in ECDSA:
            digest = getattr(hashes, ECDSA[algorithm])()
            public_key.verify(signature, statement(manifest, record["key"]), ec.ECDSA(digest))
        else:
            raise InvalidSignature
    except InvalidSignature:
        raise SignatureError(
            f"signature does not verify with key {key_fingerprint(public_key)} "
            f"(signed {algorithm} by {record['key']})"
        ) from None
    return record


def verify_tree(
    root: Path, public_key: Any, only: str = "", made_here: frozenset[str] = frozenset()
) -> int:
    """Check the signature of `root`/manifest.json, then every listed file under `only`.

    Returns how many files were checked. Files the manifest does not list under `only`
    are refused too, so nothing can be added beside the signed ones; `made_here` names
    the files the device itself writes (the engine, its timing cache).
    """
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise SignatureError(f"{manifest_path}: missing")
    manifest = manifest_path.read_bytes()
    sig_path = root / SIGNATURE
    verify_with_public_key(manifest, sig_path.read_bytes() if sig_path.is_file() else None,
                           public_key)  # fmt: skip
    listed = {e["path"]: e for e in json.loads(manifest)["files"] if e["path"].startswith(only)}
    present = {
        p.relative_to(root).as_posix()
        for p in (root / only).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    present -= {MANIFEST, SIGNATURE, *made_here}
    for rel in sorted(present | listed.keys()):
        if rel not in listed:
            raise SignatureError(f"{root / rel}: not in the signed {MANIFEST}")
        if rel not in present:
            raise SignatureError(f"{root / rel}: missing")
        if _sha256(root / rel) != listed[rel]["sha256"]:
            raise SignatureError(f"{root / rel}: changed since it was signed")
    return len(listed)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _made_here(here: Path, only: str) -> frozenset[str]:
    """The engine files metadata.json names: built on the device, so never in the manifest."""
    try:
        files = json.loads((here / "metadata.json").read_text())["files"]
    except (OSError, ValueError, KeyError):
        return frozenset()
    return frozenset(only + files[k] for k in ("plan", "timing_cache") if k in files)


def main(argv: list[str] | None = None) -> int:
    """Device-side check: exit 0 when the bundle verifies, 1 with one line when it does not."""
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description="check this bundle's manifest signature")
    parser.add_argument("--key", default=os.environ.get(KEY_ENV), help=f"PEM (default ${KEY_ENV})")
    parser.add_argument("--root", type=Path, default=here.parent, help="folder of manifest.json")
    args = parser.parse_args(argv)
    if not args.key:
        parser.error(f"no public key: pass --key or set {KEY_ENV}")
    root = args.root.resolve()
    inside = here != root and here.is_relative_to(root)
    only = f"{here.relative_to(root).as_posix()}/" if inside else ""  # jetson/: this folder
    try:
        count = verify_tree(root, load_public_key(Path(args.key)), only, _made_here(here, only))
    except SignatureError as exc:
        print(f"edgepack_signature: refusing this bundle: {exc}", file=sys.stderr)
        return 1
    print(f"edgepack_signature: signature OK, {count} files match", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
