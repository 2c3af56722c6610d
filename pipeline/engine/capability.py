"""Which TensorRT and which GPU are here, and may an engine for a target be built here?

Engines are tied to one GPU architecture and one TensorRT version, so a build (on the
host or on the device) first compares what it finds with what the bundle was made for
and refuses a mismatch with a message that says what to do.
"""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

TEGRA_COMPUTE_CAPABILITY = {
    "tegra234": "8.7",  # Orin
    "tegra194": "7.2",  # Xavier
    "tegra186": "6.2",  # TX2
    "tegra210": "5.3",  # Nano / TX1
}
DEVICE_TREE_COMPATIBLE = Path("/proc/device-tree/compatible")


def version_from_banner(text: str) -> str | None:
    """TensorRT version from trtexec's banner: `[TensorRT v100300]` → 10.3.0, v8502 → 8.5.2."""
    match = re.search(r"\[TensorRT v(\d+)\]", text)
    if not match:
        return None
    number = int(match.group(1))
    if number >= 10000:  # 10.x+: major*10000 + minor*100 + patch
        return f"{number // 10000}.{number // 100 % 100}.{number % 100}"
    return f"{number // 1000}.{number // 100 % 10}.{number % 100}"  # 8.x


def line_of(version: str) -> str:
    """major.minor of a version string (`10.3.0.30` → `10.3`)."""
    return ".".join(version.split(".")[:2])


def device_problems(
    expected_line: str, expected_cc: str, found_version: str | None, found_cc: str | None
) -> list[str]:
    """Why an engine for (line, cc) must not be built with what was found; [] if it may."""
    problems = []
    if found_version is None:
        problems.append("TensorRT not found")
    elif line_of(found_version) != expected_line:
        problems.append(
            f"TensorRT {found_version} found, but this bundle is for TensorRT {expected_line}.x"
        )
    if found_cc is None:
        problems.append("no NVIDIA GPU found")
    elif found_cc != expected_cc:
        problems.append(
            f"GPU is sm_{found_cc.replace('.', '')}, but this bundle is for "
            f"sm_{expected_cc.replace('.', '')}"
        )
    return problems


def gpu_compute_capability() -> str | None:
    """The first GPU's compute capability: nvidia-smi on discrete GPUs, device tree on Jetson."""
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=compute_cap", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=20,
            )
        except (OSError, subprocess.TimeoutExpired):
            out = None
        first = out.stdout.strip().splitlines()[0].strip() if out and out.stdout.strip() else ""
        if out is not None and out.returncode == 0 and re.fullmatch(r"\d+\.\d+", first):
            return first  # Jetson's nvidia-smi may print [N/A]: fall through to the device tree
    try:
        compatible = DEVICE_TREE_COMPATIBLE.read_bytes().decode(errors="replace")
    except OSError:
        return None
    for soc in compatible.split("\0"):
        name = soc.split(",")[-1]
        if name in TEGRA_COMPUTE_CAPABILITY:
            return TEGRA_COMPUTE_CAPABILITY[name]
    return None


def tensorrt_version() -> str | None:
    """The importable `tensorrt` module's version, or None."""
    try:
        import tensorrt
    except (ImportError, OSError):
        return None
    return str(getattr(tensorrt, "__version__", "")) or None


@dataclass(frozen=True)
class Host:
    arch: str
    tensorrt: str | None
    compute_capability: str | None

    @classmethod
    def probe(cls) -> Host:
        machine = platform.machine().lower()
        arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
        return cls(arch, tensorrt_version(), gpu_compute_capability())

    def describe(self) -> str:
        parts = [f"{self.arch} host"]
        parts.append(f"TensorRT {self.tensorrt}" if self.tensorrt else "no TensorRT")
        cc = self.compute_capability
        parts.append(f"GPU sm_{cc.replace('.', '')}" if cc else "no GPU")
        return ", ".join(parts)


def build_blockers(
    host: Host, *, arch: str, engine_build: str, trt_line: str, compute_capability: str
) -> list[str]:
    """Why the engine for a target can't be built on this host ([] means: build it here)."""
    if engine_build == "none":
        return ["the target has no TensorRT engine"]
    blockers = []
    if engine_build == "on-device" and host.arch != arch:
        blockers.append(f"{host.arch} host, the engine must be built on the {arch} device")
    blockers += device_problems(
        trt_line, compute_capability, host.tensorrt, host.compute_capability
    )
    return blockers
