"""CPU decode speed of a chat build's FP32/INT8/INT4 decoders, interleaved, against
optimum's ORTModelForCausalLM and ONNX Runtime GenAI on the same files, and optionally
against ONNX Runtime GenAI's own model builder (`--builder DIR=LABEL`).

Each call decodes `--new-tokens` greedy tokens after a `--prompt-tokens` prompt (prefill
included, EOS ignored); tokens/s = new tokens / wall seconds, median over rounds, ratio
to `ort-fp32` (the build's own loop on onnx/model.onnx). Also printed: size, greedy-token
agreement with `ort-fp32` on the same prompt.

    export PYTHONPATH=$PWD
    python benchmarks/llm_decode.py --dist dist/tiny-chat-cpu --rounds 10 --threads 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import loadavg, round_robin, timed
from pipeline.chat.decode import OnnxDecoder, stop_ids
from pipeline.chat.genai import GENAI_CONFIG, write_genai_folder

VARIANTS = ("fp32", "int8", "int4")


def model_file(onnx_dir: Path, variant: str) -> Path:
    return onnx_dir / ("model.onnx" if variant == "fp32" else f"model.{variant}.onnx")


def size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(f"{path.name}*"))


def ort_loop(path: Path, prompt: list[int], new: int, threads: int):
    decoder = OnnxDecoder(path, threads=threads)
    return lambda: decoder.greedy(prompt, new, stop=set())


def genai(folder: Path, prompt: list[int], new: int, threads: int):
    import onnxruntime_genai as og

    config_path = folder / GENAI_CONFIG
    config = json.loads(config_path.read_text())
    options = config["model"]["decoder"]["session_options"]
    options["intra_op_num_threads"] = threads
    config_path.write_text(json.dumps(config))
    model = og.Model(str(folder))

    def run() -> list[int]:
        params = og.GeneratorParams(model)
        total = len(prompt) + new
        params.set_search_options(do_sample=False, max_length=total, min_length=total)
        generator = og.Generator(model, params)
        generator.append_tokens(prompt)
        out = []
        while not generator.is_done():
            generator.generate_next_token()
            out.append(int(generator.get_next_tokens()[0]))
        return out

    return run


def optimum(onnx_dir: Path, file_name: str, prompt: list[int], new: int, threads: int):
    import onnxruntime as ort
    import torch
    from optimum.onnxruntime import ORTModelForCausalLM

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    model = ORTModelForCausalLM.from_pretrained(
        onnx_dir, file_name=file_name, use_cache=True, session_options=options,
        local_files_only=True,
    )  # fmt: skip
    ids = torch.tensor([prompt])

    def run() -> list[int]:
        out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                             max_new_tokens=new, min_new_tokens=new, pad_token_id=0)  # fmt: skip
        return out[0, len(prompt) :].tolist()

    return run


def candidates(args, prompt: list[int], tmp: Path) -> dict[str, tuple[Callable, int]]:
    onnx_dir = args.dist / "onnx"
    config = json.loads((onnx_dir / "config.json").read_text())
    out: dict[str, tuple[Callable, int]] = {}
    for v in VARIANTS:
        path = model_file(onnx_dir, v)
        out[f"ort-{v}"] = (ort_loop(path, prompt, args.new_tokens, args.threads), size(path))
    for v in VARIANTS:
        path = model_file(onnx_dir, v)
        folder = write_genai_folder(tmp / v, path, onnx_dir, config, stop_ids(onnx_dir), "cpu")
        out[f"genai-{v}"] = (genai(folder, prompt, args.new_tokens, args.threads), size(path))
    for v in ("fp32", "int4"):
        path = model_file(onnx_dir, v)
        run = optimum(onnx_dir, path.name, prompt, args.new_tokens, args.threads)
        out[f"optimum-{v}"] = (run, size(path))
    for spec in args.builder:
        folder, label = spec.split("=", 1)
        path = Path(folder) / "model.onnx"
        out[f"builder-{label}"] = (genai(Path(folder), prompt, args.new_tokens, args.threads),
                                   size(path))  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dist", type=Path, default=Path("dist/tiny-chat-cpu"))
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--builder", action="append", default=[], metavar="DIR=LABEL",
                        help="a GenAI model builder output folder to compare")  # fmt: skip
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    prompt = [(7 * i) % 200 + 30 for i in range(args.prompt_tokens)]
    print(f"loadavg before: {loadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        runs = candidates(args, prompt, Path(tmp))
        tokens = {name: run() for name, (run, _size) in runs.items()}
        samples = round_robin({n: (lambda r=r: timed(r)) for n, (r, _s) in runs.items()},
                              rounds=args.rounds, warmup=1)  # fmt: skip
    print(f"loadavg after: {loadavg()}")
    base_speed = args.new_tokens / statistics.median(samples["ort-fp32"])
    base_size, reference = runs["ort-fp32"][1], tokens["ort-fp32"]
    rows = []
    print(f"{'variant':<16}{'tokens/s':>10}{'x ort-fp32':>12}{'MB':>8}{'x size':>8}{'agree':>8}")
    for name, times in samples.items():
        speed = args.new_tokens / statistics.median(times)
        same = sum(a == b for a, b in zip(tokens[name], reference, strict=False))
        row = {"variant": name, "tokens_per_s": round(speed, 1),
               "ratio": round(speed / base_speed, 3), "mb": round(runs[name][1] / 1e6, 3),
               "size_ratio": round(runs[name][1] / base_size, 3),
               "agreement": round(same / len(reference), 3)}  # fmt: skip
        rows.append(row)
        print(f"{name:<16}{row['tokens_per_s']:>10}{row['ratio']:>12}{row['mb']:>8}"
              f"{row['size_ratio']:>8}{row['agreement']:>8}")  # fmt: skip
    print(f"{args.rounds} interleaved rounds (1 warm-up), {args.threads} thread(s), prompt "
          f"{args.prompt_tokens} tokens, {args.new_tokens} new tokens, median")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
