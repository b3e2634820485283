"""Makes ``tests/`` importable for the helpers that unit and integration tests share (tampering.py)."""
