"""The pure parts of the engine path: flags per TensorRT line, versions, capability checks."""

from __future__ import annotations

import pytest

from pipeline.engine.capability import (
    Host,
    build_blockers,
    device_problems,
    line_of,
    version_from_banner,
)
from pipeline.engine.flags import (
    builder_flag_names,
    network_flag_names,
    precision_args,
    trtexec_args,
)
from pipeline.engine.spec import EngineSpec, profile_shapes

INPUTS = ("input_ids", "attention_mask")


def spec(line: str, strongly_typed: bool = False, dla_core: int | None = None) -> EngineSpec:
    return EngineSpec(
        target="t",
        trt_line=line,
        compute_capability="8.7",
        strongly_typed=strongly_typed,
        workspace_mb=512,
        inputs=INPUTS,
        shapes=profile_shapes(INPUTS, (1, 2, 4), (8, 64, 128)),
        dla_core=dla_core,
        dla_cores=2,
    )


def test_trtexec_args_tensorrt_10_weakly_typed_full_command():
    args = trtexec_args(spec("10.3"), onnx="m.onnx", engine="m.plan", timing_cache="t.cache")
    assert args == [
        "--onnx=m.onnx",
        "--saveEngine=m.plan",
        "--minShapes=input_ids:1x8,attention_mask:1x8",
        "--optShapes=input_ids:2x64,attention_mask:2x64",
        "--maxShapes=input_ids:4x128,attention_mask:4x128",
        "--memPoolSize=workspace:512",
        "--int8",
        "--fp16",
        "--timingCacheFile=t.cache",
        "--skipInference",
    ]


@pytest.mark.parametrize(
    ("line", "strong", "expected", "skip_flag"),
    [
        ("8.5", False, ["--int8", "--fp16"], "--buildOnly"),
        ("10.3", False, ["--int8", "--fp16"], "--skipInference"),
        ("10.13", True, ["--stronglyTyped"], "--skipInference"),
        ("11.0", True, [], "--skipInference"),
        ("11.2", False, [], "--skipInference"),
    ],
)
def test_precision_and_build_only_flags_per_line(line, strong, expected, skip_flag):
    s = spec(line, strong)
    assert precision_args(s) == expected
    args = trtexec_args(s, onnx="m", engine="p", timing_cache=None)
    assert args[-1] == skip_flag
    assert not any(a.startswith("--timingCacheFile") for a in args)
    assert not {"--int8", "--fp16", "--stronglyTyped"} - set(expected) & set(args)


def test_strongly_typed_is_refused_on_tensorrt_8():
    with pytest.raises(ValueError, match=r"8\.5 has no strongly typed"):
        precision_args(spec("8.5", strongly_typed=True))


def test_dla_flags_come_last_with_gpu_fallback():
    args = trtexec_args(spec("10.3", dla_core=1), onnx="m", engine="p", timing_cache=None)
    assert args[-2:] == ["--useDLACore=1", "--allowGPUFallback"]
    no_dla = trtexec_args(
        spec("10.3", dla_core=1), onnx="m", engine="p", timing_cache=None, dla=False
    )
    assert "--allowGPUFallback" not in no_dla


@pytest.mark.parametrize(
    ("line", "strong", "dla", "network", "builder"),
    [
        ("8.5", False, None, ["EXPLICIT_BATCH"], ["INT8", "FP16"]),
        ("10.3", False, 0, [], ["INT8", "FP16", "GPU_FALLBACK"]),
        ("10.13", True, None, ["STRONGLY_TYPED"], []),
        ("11.0", True, None, [], []),
    ],
)
def test_python_api_flags_per_line(line, strong, dla, network, builder):
    s = spec(line, strong)
    assert network_flag_names(s) == network
    assert builder_flag_names(s, dla) == builder


@pytest.mark.parametrize(
    ("banner", "version"),
    [
        ("&&&& RUNNING TensorRT.trtexec [TensorRT v100300] [b30] # trtexec --help", "10.3.0"),
        ("&&&& RUNNING TensorRT.trtexec [TensorRT v8502] # trtexec --help", "8.5.2"),
        ("&&&& RUNNING TensorRT.trtexec [TensorRT v101300] [b1] # trtexec", "10.13.0"),
        ("&&&& RUNNING TensorRT.trtexec [TensorRT v110100] # trtexec", "11.1.0"),
        ("trtexec: command not found", None),
    ],
)
def test_version_from_trtexec_banner(banner, version):
    assert version_from_banner(banner) == version


def test_device_problems_name_what_differs():
    assert device_problems("10.3", "8.7", "10.3.0.30", "8.7") == []
    assert line_of("10.3.0.30") == "10.3"
    problems = device_problems("10.3", "8.7", "8.5.2", "7.2")
    assert problems == [
        "TensorRT 8.5.2 found, but this bundle is for TensorRT 10.3.x",
        "GPU is sm_72, but this bundle is for sm_87",
    ]
    assert device_problems("10.3", "8.7", None, None) == [
        "TensorRT not found",
        "no NVIDIA GPU found",
    ]


def test_build_blockers_for_targets_and_hosts():
    laptop = Host("x86_64", None, None)
    a100_runner = Host("x86_64", "10.13.2", "8.0")
    orin = Host("aarch64", "10.3.0", "8.7")
    kw = {"engine_build": "on-device", "trt_line": "10.3", "compute_capability": "8.7"}
    assert build_blockers(laptop, arch="aarch64", **kw)[0] == (
        "x86_64 host, the engine must be built on the aarch64 device"
    )
    assert build_blockers(orin, arch="aarch64", **kw) == []
    a100 = {"engine_build": "host", "trt_line": "10.13", "compute_capability": "8.0"}
    assert build_blockers(a100_runner, arch="x86_64", **a100) == []
    assert build_blockers(Host("x86_64", "10.13.2", "9.0"), arch="x86_64", **a100) == [
        "GPU is sm_90, but this bundle is for sm_80"
    ]
    assert build_blockers(
        laptop, arch="x86_64", engine_build="none", trt_line="", compute_capability=""
    ) == ["the target has no TensorRT engine"]
    assert laptop.describe() == "x86_64 host, no TensorRT, no GPU"


def test_spec_round_trips_through_json():
    s = spec("10.3", dla_core=0)
    assert EngineSpec.from_dict(s.to_dict()) == s


def test_engine_spec_refuses_an_opset_the_device_cannot_parse(tiny_onnx_models):
    from pipeline.engine.target_spec import engine_spec
    from pipeline.target import load_target
    from router.errors import UserError

    qdq = tiny_onnx_models / "model.qdq.onnx"
    xavier = load_target("jetson-xavier")
    spec = engine_spec(xavier, qdq)  # opset 17 == Xavier's maximum
    assert (spec.trt_line, spec.compute_capability, spec.dla_core) == ("8.5", "7.2", None)
    assert spec.inputs == ("input_ids", "attention_mask", "token_type_ids")
    old = xavier.model_copy(update={"onnx_max_opset": 13})
    with pytest.raises(
        UserError, match=r"opset 17 is above target jetson-xavier's onnx_max_opset 13"
    ):
        engine_spec(old, qdq)
    orin_dla = load_target("jetson").model_copy(
        update={"tensorrt": load_target("jetson").tensorrt.model_copy(update={"use_dla": True})}
    )
    assert engine_spec(orin_dla, qdq).dla_core == 0
