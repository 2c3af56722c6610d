"""Upstream pools: on-prem OpenAI-protocol servers and the SageMaker runtime (pick + call)."""
