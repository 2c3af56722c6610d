"""INT8 for the quantize stage: calibration, the TensorRT Q/DQ model, the fastest CPU model,
the accuracy gate and the TensorRT compatibility lint. One module per job; heavy imports
(onnx, onnxruntime, transformers) stay inside functions.
"""
