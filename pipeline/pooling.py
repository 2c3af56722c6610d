"""The classifier's ONNX with a second output, `embedding`: the encoder's last hidden states
mean-pooled over the attention mask and L2-normalised (sentence-transformers' pooling), so
one run yields both the score and an embedding. The router compares the embedding of each
window with the embeddings of the policy's topic examples (cosine similarity: a dot
product of unit vectors).

The encoder's output is what the classification head reads: the input of the pooler's
`Gather` (BERT's `hidden_states[:, 0]`), taken before the head quantized it. The added
nodes are float arithmetic on that tensor (no weights), so quantization does not touch
them and the score is computed exactly as before.
"""

from __future__ import annotations

from pathlib import Path

EMBEDDING = "embedding"
MIN_OPSET = 13  # Unsqueeze and ReduceSum take their axes as inputs from opset 13


def encoder_output(graph) -> str:
    """The tensor the classification head pools (the last hidden states)."""
    producers = {out: node for node in graph.node for out in node.output}
    for node in graph.node:
        head = "pooler" in node.name or "classifier" in node.name
        if head and node.op_type in ("Gather", "Slice"):
            producer = producers.get(node.input[0])
            if producer is not None and "QuantizeLinear" in producer.op_type:
                return producer.input[0]
            return node.input[0]
    raise ValueError("no pooler or classifier Gather in the graph: cannot find the encoder output")


def add_pooled_output(path: Path) -> None:
    """Add the `embedding` output to the ONNX model at `path` (in place; once)."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(path))
    graph = model.graph
    if any(out.name == EMBEDDING for out in graph.output):
        return
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if opset < MIN_OPSET:
        raise ValueError(f"opset {opset}: the pooled output needs opset >= {MIN_OPSET}")
    hidden = encoder_output(graph)
    p = "/edgepack/pooling"
    graph.initializer.extend([
        helper.make_tensor(f"{p}/axis_last", TensorProto.INT64, [1], [-1]),
        helper.make_tensor(f"{p}/axis_seq", TensorProto.INT64, [1], [1]),
        helper.make_tensor(f"{p}/eps", TensorProto.FLOAT, [], [1e-9]),
    ])  # fmt: skip
    graph.node.extend([
        helper.make_node("Unsqueeze", ["attention_mask", f"{p}/axis_last"], [f"{p}/mask3"]),
        helper.make_node("Cast", [f"{p}/mask3"], [f"{p}/maskf"], to=TensorProto.FLOAT),
        helper.make_node("Mul", [hidden, f"{p}/maskf"], [f"{p}/masked"]),
        helper.make_node("ReduceSum", [f"{p}/masked", f"{p}/axis_seq"], [f"{p}/sum"], keepdims=0),
        helper.make_node("ReduceSum", [f"{p}/maskf", f"{p}/axis_seq"], [f"{p}/count"],
                         keepdims=0),
        helper.make_node("Max", [f"{p}/count", f"{p}/eps"], [f"{p}/count_safe"]),
        helper.make_node("Div", [f"{p}/sum", f"{p}/count_safe"], [f"{p}/mean"]),
        helper.make_node("LpNormalization", [f"{p}/mean"], [EMBEDDING], axis=1, p=2),
    ])  # fmt: skip
    graph.output.append(
        helper.make_tensor_value_info(EMBEDDING, TensorProto.FLOAT, ["batch_size", "hidden"])
    )
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
