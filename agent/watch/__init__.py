"""Change watching: scraped state changes (flags, migration, dual-write, breakers) become events.

See :mod:`agent.watch.watcher` for the semantics and :mod:`agent.config.watch`
for the rule format; ``pilot.yml`` is the pilot's default watch list.
"""

from agent.watch.state import InMemoryWatchStateStore, JsonFileWatchStateStore, WatchStateStore
from agent.watch.watcher import ChangeWatcher, load_watch_rules, pilot_watch_config, series_key

__all__ = [
    "ChangeWatcher",
    "InMemoryWatchStateStore",
    "JsonFileWatchStateStore",
    "WatchStateStore",
    "load_watch_rules",
    "pilot_watch_config",
    "series_key",
]
