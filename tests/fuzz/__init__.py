"""Fuzzing the real gateway over HTTP (issue 8): generated requests in both dialects, valid,
nearly valid and hostile, against one ``relaygate serve`` per module with the in-process mock.

Bounded and reproducible for CI (see ``profile.py``); ``RELAYGATE_FUZZ_SCALE=10
RELAYGATE_FUZZ_RANDOM=1 pytest tests/fuzz`` hunts longer with fresh examples.
"""
