"""Harness for the end-to-end suite: real Django, the real sidecar binary, the real Anki client."""
