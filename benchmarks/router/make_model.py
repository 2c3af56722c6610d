"""A MiniLM-L6 sensitivity classifier of the build's shape for the router benchmark when no
build (dist/sensitivity-minilm-cpu/onnx/) exists yet; see router/testing/model.py.

    .venv/bin/python benchmarks/router/make_model.py OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from router.testing.model import make_minilm_classifier

if __name__ == "__main__":
    print(make_minilm_classifier(Path(sys.argv[1])))
