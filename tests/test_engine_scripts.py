"""The generated on-device build scripts, run for real with fake device tools on PATH.

A fake `trtexec` (prints a TensorRT banner, logs its argv, writes the engine file) and a
fake `nvidia-smi` stand in for the device; the scripts' own logic, the flag builder's
output and their refusal messages are what is asserted.
"""

from __future__ import annotations

import json
import os
import py_compile
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.engine.build import build_settings
from pipeline.engine.flags import trtexec_args
from pipeline.engine.spec import EngineSpec, profile_shapes
from pipeline.packaging.device_build import write_build_kit

INPUTS = ("input_ids", "attention_mask", "token_type_ids")
BANNERS = {
    "10.3": "[TensorRT v100300] [b30]",
    "8.5": "[TensorRT v8502]",
    "11.1": "[TensorRT v110100]",
}


def make_spec(line: str = "10.3", cc: str = "8.7", strongly_typed: bool = False) -> EngineSpec:
    return EngineSpec(
        target="jetson-orin",
        trt_line=line,
        compute_capability=cc,
        strongly_typed=strongly_typed,
        workspace_mb=1024,
        inputs=INPUTS,
        shapes=profile_shapes(INPUTS, (1, 1, 8), (8, 128, 256)),
        dla_core=None,
        dla_cores=2,
    )


def fake_device(bin_dir: Path, trt: str, cc: str | None) -> Path:
    """Fake trtexec and nvidia-smi; trtexec logs its argv to $FAKE_LOG, one per line."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    trtexec = bin_dir / "trtexec"
    trtexec.write_text(
        "#!/usr/bin/env bash\n"
        f'echo "&&&& RUNNING TensorRT.trtexec {BANNERS[trt]} # trtexec $*"\n'
        '[ "${1:-}" = "--help" ] && exit 0\n'
        'printf "%s\\n" "$@" > "$FAKE_LOG"\n'
        'for a in "$@"; do case "$a" in\n'
        '  --saveEngine=*) echo plan > "${a#--saveEngine=}";;\n'
        "esac; done\n"
    )
    smi = bin_dir / "nvidia-smi"
    smi.write_text("#!/usr/bin/env bash\n" + (f"echo {cc}\n" if cc else "exit 9\n"))
    for tool in (trtexec, smi):
        tool.chmod(0o755)
    return bin_dir


def run(cmd: list[str], bin_dir: Path, tmp: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "FAKE_LOG": str(tmp / "argv.log"),
        "HOME": str(tmp),
        **env,
    }
    return subprocess.run(cmd, capture_output=True, text=True, env=environ, timeout=60)


@pytest.fixture
def kit(tmp_path: Path) -> tuple[Path, EngineSpec]:
    spec = make_spec()
    folder = tmp_path / "bundle"
    write_build_kit(folder, spec, onnx_rel="model.qdq.onnx", extra={"target": spec.target})
    return folder, spec


def test_generated_scripts_are_valid_bash_and_python(kit):
    folder, _spec = kit
    assert subprocess.run(["bash", "-n", str(folder / "build_engine.sh")]).returncode == 0
    for path in [folder / "build_engine.py", *sorted((folder / "edgepack_engine").glob("*.py"))]:
        py_compile.compile(str(path), doraise=True, cfile=str(path) + "c.test")
    assert os.access(folder / "build_engine.sh", os.X_OK)


def test_build_engine_sh_dry_run_prints_the_exact_command(kit, tmp_path):
    folder, spec = kit
    bin_dir = fake_device(tmp_path / "bin", "10.3", "8.7")
    result = run(["bash", str(folder / "build_engine.sh"), "--dry-run"], bin_dir, tmp_path)
    assert result.returncode == 0, result.stderr
    expected = [
        str(bin_dir / "trtexec"),
        *trtexec_args(
            spec,
            onnx=f"{folder}/model.qdq.onnx",
            engine=f"{folder}/model.plan",
            timing_cache=f"{folder}/timing.cache",
        ),
    ]
    assert shlex.split(result.stdout) == expected  # bash printf %q quoting, parsed back
    assert "--int8 --fp16" in result.stdout and "--memPoolSize=workspace:1024" in result.stdout
    assert not (tmp_path / "argv.log").exists(), "dry run must not build"


def test_build_engine_sh_builds_with_dla_when_asked(kit, tmp_path):
    folder, spec = kit
    bin_dir = fake_device(tmp_path / "bin", "10.3", "8.7")
    result = run(["bash", str(folder / "build_engine.sh"), "--dla", "1"], bin_dir, tmp_path)
    assert result.returncode == 0, result.stderr
    argv = (tmp_path / "argv.log").read_text().splitlines()
    base = trtexec_args(
        spec,
        onnx=f"{folder}/model.qdq.onnx",
        engine=f"{folder}/model.plan",
        timing_cache=f"{folder}/timing.cache",
    )
    assert argv == [*base, "--useDLACore=1", "--allowGPUFallback"]
    assert (folder / "model.plan").read_text() == "plan\n"
    bad = run(["bash", str(folder / "build_engine.sh"), "--dla", "2"], bin_dir, tmp_path)
    assert bad.returncode == 2 and "has 2 DLA core(s)" in bad.stderr


@pytest.mark.parametrize(
    ("trt", "cc", "message"),
    [
        ("8.5", "8.7", "TensorRT 8.5 found, but this bundle is for TensorRT 10.3.x"),
        ("10.3", "7.2", "GPU compute capability '7.2' found, but this bundle is for 8.7"),
        ("10.3", None, "GPU compute capability 'none' found"),
    ],
)
def test_build_engine_sh_refuses_a_mismatched_device(kit, tmp_path, trt, cc, message):
    folder, _spec = kit
    bin_dir = fake_device(tmp_path / "bin", trt, cc)
    result = run(["bash", str(folder / "build_engine.sh")], bin_dir, tmp_path)
    assert result.returncode == 4
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "argv.log").exists()


def test_build_engine_sh_without_trtexec_says_what_to_install(kit, tmp_path):
    folder, _spec = kit
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run(
        ["bash", str(folder / "build_engine.sh")],
        empty,
        tmp_path,
        TRTEXEC=str(tmp_path / "missing"),
    )
    assert result.returncode == 3 and "trtexec not found (install TensorRT 10.3" in result.stderr


def fake_tensorrt(folder: Path, version: str) -> Path:
    """A `tensorrt` module that only carries a version: enough for the device check."""
    (folder / "tensorrt").mkdir(parents=True)
    (folder / "tensorrt" / "__init__.py").write_text(f"__version__ = {version!r}\n")
    return folder


def test_build_engine_py_dry_run_prints_the_api_settings(kit, tmp_path):
    folder, spec = kit
    bin_dir = fake_device(tmp_path / "bin", "10.3", "8.7")
    pythonpath = fake_tensorrt(tmp_path / "site", "10.3.0.30")
    cmd = [sys.executable, str(folder / "build_engine.py"), "--dry-run", "--dla", "0"]
    result = run(cmd, bin_dir, tmp_path, PYTHONPATH=str(pythonpath))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "onnx": str(folder / "model.qdq.onnx"),
        "plan": str(folder / "model.plan"),
        **build_settings(spec, 0, folder / "timing.cache"),
    }
    assert json.loads(result.stdout)["builder_flags"] == ["INT8", "FP16", "GPU_FALLBACK"]


def test_build_engine_py_refuses_a_mismatched_tensorrt(kit, tmp_path):
    folder, _spec = kit
    bin_dir = fake_device(tmp_path / "bin", "10.3", "8.7")
    pythonpath = fake_tensorrt(tmp_path / "site", "8.5.2.2")
    result = run(
        [sys.executable, str(folder / "build_engine.py")],
        bin_dir,
        tmp_path,
        PYTHONPATH=str(pythonpath),
    )
    assert result.returncode == 4
    assert "TensorRT 8.5.2.2 found, but this bundle is for TensorRT 10.3.x" in result.stderr
    assert "Traceback" not in result.stderr


def test_tensorrt_11_kit_has_no_precision_flags(tmp_path):
    spec = make_spec(line="11.1", cc="8.0", strongly_typed=True)
    folder = tmp_path / "kit"
    write_build_kit(folder, spec, onnx_rel="model.qdq.onnx", extra={})
    bin_dir = fake_device(tmp_path / "bin", "11.1", "8.0")
    result = run(["bash", str(folder / "build_engine.sh"), "--dry-run"], bin_dir, tmp_path)
    assert result.returncode == 0, result.stderr
    words = shlex.split(result.stdout)
    assert not {"--int8", "--fp16", "--stronglyTyped"} & set(words)
    assert words[-1] == "--skipInference"


def test_tensorrt_8_5_kit_for_xavier_uses_int8_fp16_and_build_only(tmp_path):
    spec = make_spec(line="8.5", cc="7.2")
    folder = tmp_path / "kit"
    write_build_kit(folder, spec, onnx_rel="model.qdq.onnx", extra={})
    bin_dir = fake_device(tmp_path / "bin", "8.5", "7.2")
    result = run(["bash", str(folder / "build_engine.sh"), "--dry-run"], bin_dir, tmp_path)
    assert result.returncode == 0, result.stderr
    words = shlex.split(result.stdout)
    assert words[-1] == "--buildOnly"
    assert {"--int8", "--fp16", "--buildOnly", "--memPoolSize=workspace:1024"} <= set(words)
    assert "--skipInference" not in words and "--stronglyTyped" not in words


def test_na_from_nvidia_smi_is_not_taken_for_a_compute_capability(kit, tmp_path):
    folder, _spec = kit
    bin_dir = fake_device(tmp_path / "bin", "10.3", "[N/A]")
    result = run(["bash", str(folder / "build_engine.sh"), "--dry-run"], bin_dir, tmp_path)
    assert result.returncode == 4 and "compute capability 'none' found" in result.stderr
