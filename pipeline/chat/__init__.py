"""`task: text-generation`: the chat LLM's recipe, data, model checks and the helpers its
stages share (greedy decoding, weight-only quantization, serving packages)."""
