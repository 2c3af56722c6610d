"""The router under overload; see README.md."""
