"""The ``pilot-agent`` command.

::

    pilot-agent run --config FILE        run the agent (SIGHUP reloads, SIGTERM stops)
    pilot-agent check config FILE...     validate configuration files (and their rule files)
    pilot-agent check rules FILE...      validate rule files, as promtool check rules
    pilot-agent test rules FILE...       rule unit tests, as promtool test rules
    pilot-agent demo                     simulator + agent on embedded defaults
    pilot-agent promqltest FILE...       run PromQL test files against the engine
    pilot-agent simulator                the pilot simulator alone

Exit codes: 0 success, 1 runtime failure (or failed rule checks and tests, as
promtool), 2 invalid configuration or usage.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from agent import __version__
from agent.errors import ConfigError

if TYPE_CHECKING:
    from agent.loading import Loaded

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pilot-agent", description=__doc__.split("\n")[0])
    p.add_argument("--version", action="version", version=f"pilot-agent {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the agent")
    run.add_argument("--config", "-c", required=True, help="configuration file (YAML)")
    _log_args(run)

    check = sub.add_parser("check", help="validate files without running")
    check_sub = check.add_subparsers(dest="what", required=True)
    check_config = check_sub.add_parser("config", help="validate configuration files")
    check_config.add_argument("files", nargs="+")
    check_rules = check_sub.add_parser("rules", help="validate rule files, as promtool does")
    check_rules.add_argument("files", nargs="+")

    test = sub.add_parser("test", help="run unit tests")
    test_sub = test.add_subparsers(dest="what", required=True)
    test_rules = test_sub.add_parser("rules", help="rule unit tests in promtool's format")
    test_rules.add_argument("files", nargs="+")

    demo = sub.add_parser("demo", help="run the agent against the bundled pilot simulator")
    demo.add_argument("--dir", default="demo-data", help="where the demo writes its event log")
    demo.add_argument("--outage-after", type=float, default=60.0, help="seconds before outage")
    demo.add_argument("--outage-for", type=float, default=30.0, help="seconds the outage lasts")
    demo.add_argument("--duration", type=float, default=0.0, help="stop after N s (0: Ctrl-C)")
    _log_args(demo)

    # Dispatched before parsing (its own options live in agent.promql.testfile); listed for --help.
    sub.add_parser("promqltest", help="run PromQL test files (Prometheus's format)")

    sim = sub.add_parser("simulator", help="run the pilot simulator alone")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=8700)
    sim.add_argument("--tls-port", type=int, default=None)
    return p


def _log_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--log-format", default="auto", choices=["auto", "json", "console"])


def _print_problems(exc: ConfigError) -> None:
    for problem in exc.problems:
        print(problem, file=sys.stderr)
    count = len(exc.problems)
    print(f"{count} problem{'s' if count != 1 else ''} found", file=sys.stderr)


def cmd_check_config(files: Sequence[str]) -> int:
    from agent.loading import load_all

    status = EXIT_OK
    for file in files:
        try:
            loaded = load_all(file)
        except ConfigError as exc:
            _print_problems(exc)
            status = EXIT_CONFIG
        else:
            rules = sum(len(g.rules) for g in loaded.rule_groups)
            print(f"{file}: SUCCESS: {len(loaded.config.checks)} checks, {rules} rules found")
    return status


async def run_agent(config_path: str, loaded: Loaded) -> int:
    """Run an agent in the foreground: SIGTERM/SIGINT stop it, SIGHUP reloads its config."""
    from agent.app import Agent

    agent = Agent(
        loaded.config, rule_groups=loaded.rule_groups, config_path=config_path, env=os.environ
    )
    loop = asyncio.get_running_loop()
    reloads: set[asyncio.Task[None]] = set()

    async def reload() -> None:
        with contextlib.suppress(ConfigError):
            await agent.reload()

    def on_hup() -> None:
        task = loop.create_task(reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGTERM, agent.request_shutdown)
    loop.add_signal_handler(signal.SIGINT, agent.request_shutdown)
    loop.add_signal_handler(signal.SIGHUP, on_hup)
    try:
        await agent.run()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from agent.loading import load_all
    from agent.logs import configure_logging, init_sentry

    try:
        loaded = load_all(args.config)
    except ConfigError as exc:
        _print_problems(exc)
        return EXIT_CONFIG
    configure_logging(args.log_level, args.log_format)
    init_sentry(os.environ, __version__)
    return asyncio.run(run_agent(args.config, loaded))


def cmd_demo(args: argparse.Namespace) -> int:
    from agent.demo.launcher import run_demo
    from agent.logs import configure_logging

    configure_logging(args.log_level, args.log_format)
    return asyncio.run(
        run_demo(
            data_dir=args.dir,
            outage_after=args.outage_after,
            outage_for=args.outage_for,
            duration=args.duration,
        )
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["promqltest"]:
        from agent.promql.testfile import main as promqltest_main

        return promqltest_main(argv[1:])
    args = _parser().parse_args(argv)
    try:
        if args.command == "check" and args.what == "rules":
            from agent.rulefmt.cli import check_rules_main

            return check_rules_main(args.files)
        if args.command == "check":
            return cmd_check_config(args.files)
        if args.command == "test":
            from agent.rulefmt.cli import test_rules_main

            return test_rules_main(args.files)
        if args.command == "run":
            return cmd_run(args)
        if args.command == "demo":
            return cmd_demo(args)
        if args.command == "simulator":
            from agent.demo.simulator import main as simulator_main
            from agent.logs import configure_logging

            configure_logging()
            argv_sim = ["--host", args.host, "--port", str(args.port)]
            if args.tls_port is not None:
                argv_sim += ["--tls-port", str(args.tls_port)]
            return simulator_main(argv_sim)
    except KeyboardInterrupt:
        return EXIT_OK
    return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
