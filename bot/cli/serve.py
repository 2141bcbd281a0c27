"""`run_bot.py serve` (serve a prepared bot) and `run_bot.py demo` (prepare the demo store bot, then serve it)."""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

from bot.cli.common import add_bot_args, command, open_bot
from bot.folder.bot_folder import BotFolder

EXAMPLE_MESSAGE = "Where is my order NW-482913?"


def register(sub) -> None:
    p = command(sub, "serve", serve, "serve a prepared bot over HTTP (chat API, widget, admin)",
                "  python run_bot.py serve --bot mybot\n"
                "  SUPPORTBOT_ADMIN_TOKEN=s3cret python run_bot.py serve --bot mybot --port 9000\n"
                "  python run_bot.py serve --bot mybot --set server.allowed_origins='[\"https://shop.example\"]'")
    add_bot_args(p)
    _add_address_args(p)
    p = command(sub, "demo", demo, "train the demo store bot and ingest its help articles (if needed), then serve it",
                "  python run_bot.py demo\n"
                "  python run_bot.py demo --port 9000 --no-serve     prepare only")
    add_bot_args(p)
    _add_address_args(p)
    p.add_argument("--no-serve", action="store_true", help="prepare the bot (model, knowledge base) and exit")


def _add_address_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", help="address to listen on (default: server.host)")
    p.add_argument("--port", type=int, help="port to listen on (default: server.port)")
    p.add_argument("--workers", type=int, help="server processes sharing the port (default: server.workers)")


def serve(args: argparse.Namespace) -> int:
    folder = _with_address(open_bot(args), args)
    from training.registry import ModelRegistry

    from bot.serving.readiness import knowledge_warnings

    registry = ModelRegistry(folder.settings.models_path)
    if not folder.intents:  # a knowledge-only bot: nothing to train, every message searches knowledge/
        print(f"no intents in {folder.path / 'intents.yaml'}: answering from the knowledge base only", flush=True)
        for warning in knowledge_warnings(folder):
            print(f"warning: {warning}", flush=True)
        return run(folder, knowledge_only=True)
    if registry.current_version() is None:
        if registry.versions():  # trained, but the pointer is wrong: say how
            raise FileNotFoundError(f"cannot serve {folder.path}: {registry.pointer_problem()}")
        raise FileNotFoundError(
            f"no trained model for {folder.path} in {folder.settings.models_path}: "
            f"run `python run_bot.py train --bot {folder.path}` first (or `python run_bot.py demo` for the demo bot)"
        )
    for warning in knowledge_warnings(folder):
        print(f"warning: {warning}", flush=True)
    return run(folder)


def demo(args: argparse.Namespace) -> int:
    from bot.serving.keys import TOKEN_ENV, admin_token, demo_admin_token

    from bot.training_run import prepare_bot

    folder = _with_address(open_bot(args), args)
    prepare_bot(folder)
    if args.no_serve:
        return 0
    if admin_token(folder.settings):
        return run(folder)
    os.environ[TOKEN_ENV] = demo_admin_token(folder.settings.state_path)
    return run(folder, token_file=folder.settings.state_path / "admin_token")


def run(folder: BotFolder, token_file: Path | None = None, knowledge_only: bool = False) -> int:
    """Serve until interrupted (in server.workers processes); prints the URL and a curl example first."""
    from bot.web.app import serve

    s = folder.settings.server
    print(_banner(f"http://{s.host}:{s.port}", token_file, s.workers), flush=True)
    return serve(folder, knowledge_only)


def _banner(url: str, token_file: Path | None, workers: int = 1) -> str:
    processes = f", {workers} worker processes" if workers > 1 else ""
    lines = [
        f"supportbot serving on {url}  (widget demo page: {url}/demo, API: {url}/openapi.json{processes})",
        "try:",
        f"  curl -s {url}/api/chat -H 'Content-Type: application/json' -d '{{\"message\": \"{EXAMPLE_MESSAGE}\"}}'",
        "  (send the reply's conversation_id and token along to continue the conversation)",
    ]
    if token_file is not None:
        lines.append(f"admin endpoints: Authorization: Bearer $(cat {token_file})")
    return "\n".join(lines)


def _with_address(folder: BotFolder, args: argparse.Namespace) -> BotFolder:
    given = (("host", args.host), ("port", args.port), ("workers", args.workers))
    changes = {k: v for k, v in given if v is not None}
    if not changes:
        return folder
    server = dataclasses.replace(folder.settings.server, **changes)
    return dataclasses.replace(folder, settings=dataclasses.replace(folder.settings, server=server))
