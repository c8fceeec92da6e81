"""`relaygate cache clear`: ask the running gateway to forget cached answers.

It calls ``DELETE /admin/cache`` on the gateway (``--url``, default the config's host and port)
with an admin token (``--admin-token``, default the one in the first-run credentials file), so
it clears the memory backend of that process as well as a shared Redis cache.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import httpx
import orjson

from relaygate.auth import CREDENTIALS_FILE
from relaygate.settings import ConfigError, load_settings

EXIT_OK = 0
EXIT_USER_ERROR = 1
EXIT_CONFIG_ERROR = 2
TOKEN_LINE = "RELAYGATE_ADMIN_TOKEN="  # noqa: S105 (the name of a line, not a secret)


def add_cache_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cache = subparsers.add_parser("cache", help="the response cache")
    actions = cache.add_subparsers(dest="cache_command", required=True, metavar="ACTION")
    clear = actions.add_parser("clear", help="forget cached answers (all, one key's, one model's)")
    clear.add_argument("--key", help="only this key's own entries")
    clear.add_argument("--model", help="only this model's entries (name or alias)")
    clear.add_argument("--url", help="the gateway (default: http://HOST:PORT from the config)")
    clear.add_argument("--admin-token", help="default: from the first-run credentials file")
    clear.add_argument("--config", type=Path, help="YAML config")
    clear.set_defaults(handler=run_clear)


def run_clear(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"relaygate cache: configuration error\n{exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    url = args.url or f"http://{settings.server.host}:{settings.server.port}"
    token = args.admin_token or _saved_token(settings.resolved_home / CREDENTIALS_FILE)
    if token is None:
        print("error: give --admin-token (no first-run credentials file found)", file=sys.stderr)
        return EXIT_USER_ERROR
    params = {name: value for name, value in (("key", args.key), ("model", args.model)) if value}
    try:
        answer = httpx.delete(
            url.rstrip("/") + "/admin/cache",
            params=params,
            headers={"authorization": f"Bearer {token}"},
            timeout=30,
        )
    except httpx.HTTPError as exc:
        print(f"error: cannot reach the gateway at {url}: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    if answer.status_code != 200:
        print(f"error: {answer.status_code} {answer.text}", file=sys.stderr)
        return EXIT_USER_ERROR
    result = orjson.loads(answer.content)
    print(f"removed {result['removed']} cached answers ({result['backend']} backend)")
    return EXIT_OK


def _saved_token(path: Path) -> str | None:
    try:
        text = path.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(TOKEN_LINE):
            return line[len(TOKEN_LINE) :].strip() or None
    return None
