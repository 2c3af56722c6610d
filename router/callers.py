"""Trusted callers prove who they are with a secret, not with a name.

`X-Caller: batch-job` is a header any client can send, so on its own it must not skip
classification. A caller listed in `classifier.trusted_callers` also sends its own token
(`X-Caller-Token: Bearer <token>`), read at start from a file (a mounted Kubernetes
Secret) or an environment variable, and compared in constant time (hmac.compare_digest),
so timing tells nothing about how much of a guess was right. The token header is never
forwarded upstream (router/upstreams/onprem.py forwards a fixed list) nor logged.
Rotating a token needs a restart: the classifier is not reloaded by SIGHUP.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping

from router.config import CallerToken, ClassifierConfig
from router.errors import UserError


class CallerTrust:
    def __init__(self, config: ClassifierConfig, environ: Mapping[str, str] = os.environ) -> None:
        self.name_header = config.caller_header.lower()
        self.token_header = config.caller_token_header.lower()
        self.tokens = {
            name: read_token(name, config.caller_tokens[name], environ)
            for name in config.trusted_callers
        }

    def proven(self, headers: Mapping[str, str]) -> bool:
        """Does the request name a trusted caller and carry that caller's token?"""
        if not self.tokens:
            return False
        secret = self.tokens.get(headers.get(self.name_header, ""))
        if secret is None:
            return False
        given = headers.get(self.token_header, "").strip()
        if given[:7].lower() == "bearer ":
            given = given[7:].strip()
        return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), secret)


def read_token(name: str, source: CallerToken, environ: Mapping[str, str]) -> bytes:
    """The caller's secret; a missing or empty one stops the router with one line."""
    where = f"classifier.caller_tokens.{name}"
    if source.file is not None:
        try:
            token = source.file.read_text().strip()
        except OSError as err:
            raise UserError(f"{where}.file: cannot read {source.file}: {err.strerror}") from None
    else:
        token = environ.get(source.env or "", "").strip()
    if not token:
        raise UserError(f"{where}: the token is empty or unset")
    return token.encode()
