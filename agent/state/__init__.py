"""Where state outlives the process: the in-memory and Redis stores, and the leader lease.

- :mod:`agent.state.base`: :class:`~agent.state.base.CheckSnapshot`, the check store
  protocol and the metrics protocol (standard library only: the checks import it);
- :mod:`agent.state.memory`: the embedded store with its optional snapshot file;
- :mod:`agent.state.redis`: the shared store in Redis, with write-behind;
- :mod:`agent.state.lease`: leader election (:mod:`agent.state.lease_timing` its timing);
- :mod:`agent.state.factory`: both built from the ``state`` configuration section.
"""
