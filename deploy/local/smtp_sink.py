"""A real SMTP server for the local stack that keeps every message it receives, so a person can see what
Buurtkracht sent.

    python deploy/local/smtp_sink.py serve --port 10025 --dir .local/mail     (make run starts it)
    python deploy/local/smtp_sink.py list --dir .local/mail                    (make mail)
    python deploy/local/smtp_sink.py show FILE                                 (one message, text part)
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import signal
import time
import uuid
from pathlib import Path

from aiosmtpd.controller import Controller


class Keep:
    """Store each message as an .eml file named by arrival time."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server, session, envelope) -> str:
        name = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}.eml"
        (self.directory / name).write_bytes(envelope.original_content or envelope.content)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        print(f"received {name}: to {', '.join(envelope.rcpt_tos)} — {message['Subject']}", flush=True)
        return "250 Message accepted for delivery"


def serve(host: str, port: int, directory: Path) -> None:
    controller = Controller(Keep(directory), hostname=host, port=port)
    controller.start()
    print(f"SMTP sink listening on {host}:{port}, keeping messages in {directory}", flush=True)
    stop = asyncio.new_event_loop()
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda *_: stop.call_soon_threadsafe(stop.stop))
    try:
        stop.run_forever()
    finally:
        controller.stop()


def listing(directory: Path) -> None:
    files = sorted(directory.glob("*.eml"))
    for path in files:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        print(f"{path.name}  {message['Date']}  to {message['To']}  {message['Subject']}")
    print(f"{len(files)} messages in {directory}")


def show(path: Path) -> None:
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    print(f"From: {message['From']}\nTo: {message['To']}\nSubject: {message['Subject']}\n")
    print(message.get_body(("plain",)).get_content())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    serving = commands.add_parser("serve")
    serving.add_argument("--host", default="127.0.0.1")
    serving.add_argument("--port", type=int, default=10025)
    serving.add_argument("--dir", type=Path, default=Path(".local/mail"))
    listed = commands.add_parser("list")
    listed.add_argument("--dir", type=Path, default=Path(".local/mail"))
    shown = commands.add_parser("show")
    shown.add_argument("file", type=Path)
    args = parser.parse_args()
    if args.command == "serve":
        serve(args.host, args.port, args.dir)
    elif args.command == "list":
        listing(args.dir)
    else:
        show(args.file)
