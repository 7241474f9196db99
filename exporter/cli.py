"""Command line: `bliss-exporter [flags]` runs the exporter; `demo` and `simulate` are sub-commands."""

from __future__ import annotations

import sys


def parser():
    """The exporter's flags, and the `demo` and `simulate` sub-commands with theirs."""
    from .config import exporter_parser
    from .devtools import demo, simulate
    from .options import Parser

    p = exporter_parser()
    commands = p.add_subparsers(dest="command", metavar="{demo,simulate}", parser_class=Parser)
    demo.add_arguments(commands.add_parser(
        "demo", help="embedded Redis Stack + simulated BLISS session + exporter (until Ctrl-C)",
        description="Run the exporter on a simulated beamline."))
    simulate.add_arguments(commands.add_parser(
        "simulate", help="publish BLISS-like scans into a data store through blissdata",
        description="Publish realistic BLISS-like scans through blissdata."))
    return p


def run_exporter(argv: list[str]) -> int:
    """The exporter until SIGINT/SIGTERM: exit 0, or 1 if it cannot listen."""
    from .app import Exporter
    from .config import load_config
    from .runtime import configure_process, run_until_signal
    from .web.http import format_address

    config = load_config(argv)
    configure_process(config.log_format, config.log_level)
    exporter = Exporter(config)
    try:
        run_until_signal(exporter.start, exporter.stop)
    except OSError as exc:  # e.g. the listen port is taken
        print(f"bliss-exporter: error: cannot listen on {format_address(config.listen_host, config.listen_port)}: "
              f"{exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point: one line on stderr and exit status 2 for bad flags, values or environment."""
    from gevent import monkey

    monkey.patch_all()  # before anything imports socket, ssl or redis
    from .options import UsageError

    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv and argv[0] in ("demo", "simulate"):
            args = parser().parse_args(argv)
            from .devtools import demo, simulate

            return (demo if args.command == "demo" else simulate).run(args)
        if any(a in ("-h", "--help") for a in argv):
            parser().print_help()
            return 0
        return run_exporter(argv)
    except UsageError as exc:
        print(f"bliss-exporter: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
