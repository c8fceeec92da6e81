"""relaygate's benchmark: direct-to-mock vs through-the-gateway, side by side in one run.

Run it with ``make bench`` or ``.venv/bin/python -m bench.run [--quick]``; see bench/README.md.
"""

__all__: list[str] = []
