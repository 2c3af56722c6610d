"""`edgepack --help` lists every area's commands without loading the training or GPU stack."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "onnxruntime", "tensorrt", "transformers", "optimum", "peft", "matplotlib")

HELP_THEN_MODULES = """
import json, sys
from pipeline.cli import main
heavy, sys.argv, code = sys.argv[1:], ["edgepack", "--help"], 0
try:
    main()
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "heavy": [m for m in heavy if m in sys.modules]}))
"""


def test_help_lists_all_commands_and_imports_no_heavy_package():
    done = subprocess.run(
        [sys.executable, "-c", HELP_THEN_MODULES, *HEAVY],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    *help_lines, last = done.stdout.strip().splitlines()
    result = json.loads(last)
    assert result == {"code": 0, "heavy": []}
    help_text = "\n".join(help_lines)
    for command in ("build", "inspect", "schema", "lint", "verify", "publish", "fetch", "list",
                    "router", "classify"):  # fmt: skip
        assert f" {command} " in help_text, f"{command} missing from --help"
