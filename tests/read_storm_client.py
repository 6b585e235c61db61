"""`python -m tests.read_storm_client PORT DATE STOPFILE TIMEOUT`: waves of 200 concurrent read
requests (a quarter abandoned after 50 ms; pages of STORM_LIMIT rows, default 1,000) against a
worker, one wave a second, plus a /live probe every 0.2 s, until STOPFILE exists; then the
statuses seen, as JSON on stdout. A process of its
own, so the storm does not share an interpreter lock with the test that times the worker."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import aiohttp
import orjson

WAVE = 200


async def storm(port: int, day: str, stop: Path, limit: float) -> dict:
    base = f"http://127.0.0.1:{port}"
    reads = f"http://127.0.0.1:{os.environ.get('STORM_PORT', port)}"  # another server: an experiment
    page = f"{reads}/scores?network=ethereum&date={day}&window_days=7&limit={os.environ.get('STORM_LIMIT', '1000')}&offset="
    seen: dict[str, list[float]] = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        async def one(i: int) -> None:
            abandon = i % 4 == 0
            started = time.monotonic()
            try:
                timeout = aiohttp.ClientTimeout(total=0.05 if abandon else limit + 5)
                async with session.get(page + str((i * 97) % 1000), timeout=timeout) as response:
                    await response.read()
                    seen.setdefault(str(response.status), []).append(time.monotonic() - started)
            except TimeoutError:
                seen.setdefault("abandoned" if abandon else "client timeout", []).append(0.0)

        async def live() -> None:
            while not stop.exists():
                async with session.get(f"{base}/live") as response:
                    seen.setdefault(f"live {response.status}", []).append(0.0)
                await asyncio.sleep(0.2)

        prober = asyncio.ensure_future(live())
        while not stop.exists():
            wave_started = time.monotonic()
            await asyncio.gather(*(one(i) for i in range(WAVE)))
            seen.setdefault("waves", []).append(time.monotonic() - wave_started)
            await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - wave_started)))
        await prober
    return seen


if __name__ == "__main__":
    os.nice(19)  # a load generator on the box under test: it must not take the worker's CPU
    port, day, stop, limit = int(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), float(sys.argv[4])
    sys.stdout.write(orjson.dumps(asyncio.run(storm(port, day, stop, limit))).decode())
