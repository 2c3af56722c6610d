"""Run a serialized TensorRT engine on numpy inputs (name-based I/O, TensorRT 8.5+).

torch supplies the CUDA buffers and stream: it is on every JetPack and GPU image that
runs this, and avoids a second CUDA binding (pycuda / cuda-python).
"""

from __future__ import annotations

from pathlib import Path


def run_engine(plan: Path, feeds: dict) -> dict:
    """Outputs (numpy) of one inference; inputs the engine does not have are ignored."""
    import numpy as np
    import tensorrt as trt
    import torch

    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    engine = runtime.deserialize_cuda_engine(Path(plan).read_bytes())
    context = engine.create_execution_context()
    buffers, outputs = {}, []
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    for name in names:
        if engine.get_tensor_mode(name) != trt.TensorIOMode.INPUT:
            outputs.append(name)
            continue
        array = np.ascontiguousarray(feeds[name], dtype=trt.nptype(engine.get_tensor_dtype(name)))
        buffers[name] = torch.from_numpy(array).cuda()
        context.set_input_shape(name, tuple(array.shape))
    for name in outputs:
        dtype = torch.from_numpy(np.zeros(1, trt.nptype(engine.get_tensor_dtype(name)))).dtype
        buffers[name] = torch.empty(
            tuple(context.get_tensor_shape(name)), dtype=dtype, device="cuda"
        )
    for name in names:
        context.set_tensor_address(name, buffers[name].data_ptr())
    stream = torch.cuda.Stream()
    if not context.execute_async_v3(stream.cuda_stream):
        raise RuntimeError(f"{plan}: TensorRT inference failed")
    stream.synchronize()
    return {name: buffers[name].cpu().numpy() for name in outputs}
