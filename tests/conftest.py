"""Shared fixtures: the real PostgreSQL and Redis servers used by contract and integration tests.

When a server is not reachable the test is skipped locally, and fails when CI=true, so a CI run
can never pass by quietly skipping the shared backends.
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import AsyncIterator
from typing import NoReturn

import asyncpg
import pytest
import redis.asyncio as aioredis

POSTGRES_HOST, POSTGRES_PORT = "127.0.0.1", 5432
POSTGRES_SERVER_URL = f"postgresql://postgres@{POSTGRES_HOST}:{POSTGRES_PORT}/test"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
REDIS_TEST_DB = 15


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """The test database's URL, once the server answers on its port."""
    if not _reachable(POSTGRES_HOST, POSTGRES_PORT):
        _unavailable(f"PostgreSQL not reachable at {POSTGRES_HOST}:{POSTGRES_PORT}")
    return POSTGRES_SERVER_URL


@pytest.fixture
async def postgres_url(postgres_server_url: str) -> AsyncIterator[str]:
    """A URL whose ``search_path`` is a fresh schema, dropped with everything in it afterwards.

    Unqualified table names (and so migrations) land in that schema, isolating each test.
    """
    schema = f"test_{uuid.uuid4().hex[:16]}"
    conn = await asyncpg.connect(postgres_server_url)
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
    finally:
        await conn.close()
    yield f"{postgres_server_url}?search_path={schema}"
    conn = await asyncpg.connect(postgres_server_url)
    try:
        await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def redis_server_url() -> str:
    """The Redis server's base URL, once it answers on its port."""
    if not _reachable(REDIS_HOST, REDIS_PORT):
        _unavailable(f"Redis not reachable at {REDIS_HOST}:{REDIS_PORT}")
    return f"redis://{REDIS_HOST}:{REDIS_PORT}"


@pytest.fixture
async def redis_url(redis_server_url: str) -> AsyncIterator[str]:
    """A URL for Redis database 15, emptied before and after the test."""
    async with emptied_redis_db(redis_server_url, REDIS_TEST_DB) as url:
        yield url


@contextlib.asynccontextmanager
async def emptied_redis_db(server_url: str, db: int) -> AsyncIterator[str]:
    """The URL of Redis database ``db``, emptied on entry and on exit."""
    url = f"{server_url}/{db}"
    client = aioredis.Redis.from_url(url)
    try:
        await client.flushdb()
        yield url
        await client.flushdb()
    finally:
        await client.aclose()
