"""The ``logwarden`` command: up, serve, generate, user, key."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from shared.settings import SERVICE_NAMES


def serve(service: str) -> int:
    """Run one service under uvicorn (uvloop + httptools) on its configured port."""
    import uvicorn
    from pydantic import ValidationError

    from shared.settings import Settings
    from shared.supervisor import CONFIG_ERROR_EXIT
    from shared.telemetry import configure_logging, shutdown_tracing

    try:
        settings = Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        print(f"logwarden: invalid setting LOGWARDEN_{field.upper()}: {first['msg']}", file=sys.stderr)
        return CONFIG_ERROR_EXIT
    configure_logging(service, settings.log_level)
    module = importlib.import_module(f"services.{service}.app")
    app = module.create_app(settings)
    uvicorn.run(
        app,
        host=settings.bind_host,
        port=settings.service_port(service),
        loop="uvloop",
        http="httptools",
        log_config=None,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=10,
    )
    shutdown_tracing()
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``logwarden`` command."""
    parser = argparse.ArgumentParser(prog="logwarden", description="logwarden log monitoring platform")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start the whole platform (embedded mode)")
    up.add_argument("--health-timeout", type=float, default=60.0, help="seconds to wait for healthy")
    run = commands.add_parser("serve", help="run one service")
    run.add_argument("service", choices=SERVICE_NAMES)

    from shared.generator import add_generate_arguments

    add_generate_arguments(commands.add_parser("generate", help="write or send realistic demo events"))

    from services.gateway.auth.cli import add_key_parser, add_user_parser

    add_user_parser(commands)
    add_key_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``logwarden`` console script."""
    args = build_parser().parse_args(argv)
    if args.command == "up":
        from shared.supervisor import run_up

        return run_up(health_timeout=args.health_timeout)
    if args.command == "serve":
        return serve(args.service)
    if args.command == "generate":
        from shared.generator import run_generate

        return run_generate(args)
    handler = getattr(args, "handler", None)
    if handler is None:
        build_parser().print_help()
        return 2
    result: int = handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
