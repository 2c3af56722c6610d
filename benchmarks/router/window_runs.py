"""CPU per window and the memory a run needs, for runs of B full windows (128 tokens): what
sizes the bulk lane's runs (router/sensitivity/batching.py, BULK_RUN).

    .venv/bin/python benchmarks/router/window_runs.py [--model M.onnx] [--sizes 1,2,4,8] \
        [--rounds 2]

Each (round, B) runs in a fresh process, on the model's one-thread InferenceSession after
a few short prompts (as a router has seen): 64 windows of random ids in runs of B; CPU ms
per window, and the peak RSS the runs add (ONNX Runtime's arena grows to the largest run
and keeps it). Sizes interleave round by round.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks import common

CHILD = """
import gc, json, random, sys, time
from pathlib import Path
from router.config import ModelConfig
from router.sensitivity.model import OnnxSensitivityModel

def rss(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024

size = int(sys.argv[2])
model = OnnxSensitivityModel.load(ModelConfig(path=Path(sys.argv[1])))
model.scores(["hello there, how are you?"] * 8)
pick = random.Random(0)
windows = [(101, *(pick.randint(1000, 20000) for _ in range(126)), 102) for _ in range(64)]
gc.collect()
Path("/proc/self/clear_refs").write_text("5")
idle = rss("VmRSS")
start = time.process_time()
for i in range(0, len(windows), size):
    model.scores(windows[i : i + size])
cpu = (time.process_time() - start) / len(windows) * 1000
print(json.dumps({"run": size, "cpu_ms_per_window": round(cpu, 1),
                  "rss_added_mb": round(rss("VmHWM") - idle, 1)}))
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, help="model.int8.onnx (default: MiniLM-L6)")
    p.add_argument("--sizes", default="1,2,4,8")
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    print(f"loadavg before {common.loadavg()}")
    with tempfile.TemporaryDirectory(prefix="bench-runs-") as tmp:
        model = args.model
        if model is None:
            from router.testing.model import make_minilm_classifier

            model = make_minilm_classifier(Path(tmp) / "model")
        env = {**os.environ, "PYTHONPATH": str(common.ROOT)}
        for _ in range(args.rounds):
            for size in args.sizes.split(","):
                argv = [sys.executable, "-c", CHILD, str(model), size]
                out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
                print(json.loads(out.stdout.splitlines()[-1]), flush=True)
    print(f"loadavg after {common.loadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
