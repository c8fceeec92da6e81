"""Coalescing in one process: one producer, every reader sees every event from the start."""

from __future__ import annotations

import asyncio

from relaygate.cache import Flight, Flights
from relaygate.core.errors import UpstreamError
from relaygate.core.events import MessageStop, StreamError, StreamEvent, TextDelta


async def collect(flight: Flight) -> list[StreamEvent]:
    return [event async for event in flight.read()]


async def test_late_readers_get_every_event_in_order() -> None:
    flights = Flights()
    gate = asyncio.Event()
    calls = 0

    async def produce(flight: Flight) -> None:
        nonlocal calls
        calls += 1
        flight.push([TextDelta(0, "a")])
        await gate.wait()
        flight.push([TextDelta(0, "b"), MessageStop()])

    flight = flights.start("k", produce)
    early = asyncio.create_task(collect(flight))
    await asyncio.sleep(0)
    joined = flights.join("k")
    assert joined is flight and flight.followers == 1
    late = asyncio.create_task(collect(joined))
    gate.set()
    expected = [TextDelta(0, "a"), TextDelta(0, "b"), MessageStop()]
    assert await early == expected and await late == expected
    assert calls == 1 and len(flights) == 0 and flights.join("k") is None


async def test_a_reader_leaving_does_not_stop_the_others() -> None:
    flights = Flights()
    gate = asyncio.Event()

    async def produce(flight: Flight) -> None:
        flight.push([TextDelta(0, "a")])
        await gate.wait()
        flight.push([MessageStop()])

    flight = flights.start("k", produce)
    leaver, stayer = flight.read(), asyncio.create_task(collect(flight))
    assert await anext(leaver) == TextDelta(0, "a")
    await leaver.aclose()
    gate.set()
    assert await stayer == [TextDelta(0, "a"), MessageStop()]


async def test_the_call_is_cancelled_once_every_reader_left() -> None:
    flights = Flights()
    cancelled = asyncio.Event()

    async def produce(flight: Flight) -> None:
        flight.push([TextDelta(0, "a")])
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    flight = flights.start("k", produce)
    reader = flight.read()
    await anext(reader)
    await reader.aclose()
    await asyncio.wait_for(cancelled.wait(), 5)


async def test_a_failure_reaches_every_reader() -> None:
    flights = Flights()
    err = UpstreamError("boom", status=502)

    async def produce(flight: Flight) -> None:
        await asyncio.sleep(0)
        raise err

    flight = flights.start("k", produce)
    results = await asyncio.gather(collect(flight), collect(flight))
    assert results[0] == results[1] == [StreamError(err)]


async def test_a_flight_whose_callers_all_left_is_not_joined() -> None:
    flights = Flights()

    async def produce(flight: Flight) -> None:
        flight.push([TextDelta(0, "a")])
        await asyncio.Event().wait()

    flight = flights.start("k", produce)
    reader = flight.read()
    await anext(reader)
    await reader.aclose()  # the only caller left: the call is being cancelled
    assert flights.join("k") is None  # a newcomer starts a call of its own, not this dead one
