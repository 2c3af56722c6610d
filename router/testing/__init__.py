"""Test doubles that speak the real wire protocols (used by tests, the demo, the benchmark).

- `openai_server`: an OpenAI-compatible server (chat/completions, SSE streams, /health)
  with controllable latency, failures and health.
- `sagemaker_server`: SageMaker runtime's REST-JSON protocol (InvokeEndpoint,
  InvokeEndpointWithResponseStream with AWS event-stream framing, x-amzn-ErrorType errors),
  so the real boto3 client works against it through `endpoint_url`.
- `serve`: run any ASGI app under uvicorn in a background thread on a free 127.0.0.1 port.
"""
