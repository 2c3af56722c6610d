"""Fixtures shared by several test modules.

Servers started once per session come from their fixture modules, registered here as
plugins so that each session fixture exists once (a session fixture imported into several
test modules would start once per module).
"""

from __future__ import annotations

pytest_plugins = ["tests.fixtures.s3"]  # s3_server, bucket, aws_env
