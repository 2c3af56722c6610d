"""Signing keys for `publish --sign` and public keys for `fetch`/`verify --public-key`.

A key is named by one string (an option or an environment variable):
  PATH            a PEM file: an Ed25519 private key to sign (`edgepack keygen`), or a
                  public key to verify (Ed25519, or an EC key exported from KMS)
  kms:KEY         an AWS KMS asymmetric key (id, ARN or alias/NAME): Sign and Verify run
                  in KMS through boto3, with the credentials and region of boto3's chain
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.signature import (
    ECDSA,
    ED25519,
    SignatureError,
    key_fingerprint,
    load_public_key,
    make_record,
    parse_record,
    statement,
    verify_with_public_key,
)
from router.errors import UserError

KMS_PREFIX = "kms:"
SIGN_ENV = "EDGEPACK_SIGNING_KEY"


@dataclass(frozen=True)
class Signer:
    spec: str
    """The key as the user named it."""

    def sign(self, manifest: bytes) -> bytes:
        """The signature record (manifest.json.sig's bytes) for `manifest`."""
        if self.spec.startswith(KMS_PREFIX):
            return _kms_sign(self.spec.removeprefix(KMS_PREFIX), manifest)
        key = _load_private_key(Path(self.spec))
        name = key_fingerprint(key.public_key())
        return make_record(manifest, ED25519, name, key.sign(statement(manifest, name)))


@dataclass(frozen=True)
class Verifier:
    spec: str

    def check(self, manifest: bytes, record: bytes | None, where: str) -> dict:
        """The verified record; a UserError naming `where` when it does not verify."""
        try:
            if self.spec.startswith(KMS_PREFIX):
                return _kms_verify(self.spec.removeprefix(KMS_PREFIX), manifest, record)
            return verify_with_public_key(manifest, record, load_public_key(Path(self.spec)))
        except SignatureError as exc:
            raise UserError(f"{where}: refusing this bundle: {exc}", code=1) from None


def signer(spec: str | None) -> Signer | None:
    if not spec:
        return None
    if not spec.startswith(KMS_PREFIX):
        _load_private_key(Path(spec))  # a bad key fails before anything is uploaded
    return Signer(spec)


def verifier(spec: str | None) -> Verifier | None:
    if not spec:
        return None
    if not spec.startswith(KMS_PREFIX):
        try:
            load_public_key(Path(spec))
        except SignatureError as exc:
            raise UserError(f"--public-key {exc}") from None
    return Verifier(spec)


def _load_private_key(path: Path) -> Any:
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise UserError(
            f"--sign {path}: not a readable, unencrypted PEM private key ({exc})"
        ) from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise UserError(f"--sign {path}: expected an Ed25519 private key (edgepack keygen)")
    return key


def generate_key(private: Path, public: Path) -> str:
    """Write a new Ed25519 key pair (private key mode 0600); returns its fingerprint."""
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
        PublicFormat,
    )

    for path in (private, public):
        if path.exists():
            raise UserError(f"{path}: exists; refusing to overwrite a key")
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    private.parent.mkdir(parents=True, exist_ok=True)
    with open(private, "xb", opener=lambda p, flags: os.open(p, flags, 0o600)) as fh:
        fh.write(pem)
    public.write_bytes(
        key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    return key_fingerprint(key.public_key())


def kms_client() -> Any:
    """KMS through boto3's chain (AWS_REGION, AWS_ENDPOINT_URL_KMS, role credentials)."""
    import boto3

    try:
        return boto3.session.Session().client("kms")
    except Exception as exc:  # NoRegionError, ProfileNotFound
        raise UserError(f"KMS client: {' '.join(str(exc).split())}") from None


@contextmanager
def kms_errors(key_id: str) -> Iterator[None]:
    """botocore failures inside the block as one-line UserErrors naming the key."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        text = f"kms:{key_id}: {error.get('Code', '?')}: {error.get('Message', '')}"
        raise UserError(" ".join(text.split()).rstrip(":"), code=1) from None
    except BotoCoreError as exc:
        raise UserError(f"kms:{key_id}: {' '.join(str(exc).split())}", code=3) from None


def _kms_sign(key_id: str, manifest: bytes) -> bytes:
    client = kms_client()
    with kms_errors(key_id):
        described = client.describe_key(KeyId=key_id)["KeyMetadata"]
        algorithms = described.get("SigningAlgorithms", [])
        usable = [a for a in ECDSA if a in algorithms]
        if not usable:
            raise UserError(f"kms:{key_id}: not an ECC SIGN_VERIFY key (algorithms: "
                            f"{', '.join(algorithms) or 'none'})")  # fmt: skip
        arn = described["Arn"]
        answer = client.sign(KeyId=arn, Message=statement(manifest, arn), MessageType="RAW",
                             SigningAlgorithm=usable[0])  # fmt: skip
    return make_record(manifest, usable[0], arn, answer["Signature"])


def _kms_verify(key_id: str, manifest: bytes, record_bytes: bytes | None) -> dict:
    from botocore.exceptions import ClientError

    record = parse_record(manifest, record_bytes)
    if record["algorithm"] not in ECDSA:
        raise SignatureError(
            f"signed {record['algorithm']} by {record['key']}, not by kms:{key_id}"
        )
    client = kms_client()
    with kms_errors(key_id):
        try:
            valid = client.verify(
                KeyId=key_id, Message=statement(manifest, record["key"]), MessageType="RAW",
                Signature=record["signature"], SigningAlgorithm=record["algorithm"],
            )["SignatureValid"]  # fmt: skip
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "KMSInvalidSignatureException":
                raise
            valid = False
    if not valid:
        raise SignatureError(
            f"signature does not verify with kms:{key_id} (signed by {record['key']})"
        )
    return record


def export_public_key(key_id: str) -> bytes:
    """The PEM public key of a KMS key, for devices that verify without AWS access."""
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        PublicFormat,
        load_der_public_key,
    )

    with kms_errors(key_id):
        der = kms_client().get_public_key(KeyId=key_id)["PublicKey"]
    return load_der_public_key(der).public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
