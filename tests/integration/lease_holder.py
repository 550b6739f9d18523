"""A process that holds a RedisLease until it is killed: the leader a test can crash.

Run as ``python -m tests.integration.lease_holder URL IDENTITY TTL RENEW``; prints
``acquired <token>`` once it leads.
"""

from __future__ import annotations

import asyncio
import sys

from agent.config.state import LeaderElectionConfig, RedisStateConfig
from agent.state.lease import RedisLease


async def main(url: str, identity: str, ttl: float, renew: float) -> None:
    election = LeaderElectionConfig(
        enabled=True, identity=identity, lease_ttl=ttl, renew_interval=renew
    )
    async with RedisLease(RedisStateConfig(url=url), election) as lease:
        await lease.wait_leader()
        print("acquired", lease.token, flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])))
