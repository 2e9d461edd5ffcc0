"""`billstream api` (the HTTP front door) and `billstream api-keys create|list|revoke`."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from billstream_core.errors import BillstreamError
from billstream_core.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    api = sub.add_parser("api", help="serve the HTTP API and the web page")
    api.add_argument("--host", default=None, help="default: BILLSTREAM_API__HOST (127.0.0.1)")
    api.add_argument("--port", type=int, default=None, help="default: BILLSTREAM_API__PORT (18080)")
    api.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    api.set_defaults(run=run_api)

    keys = sub.add_parser("api-keys", help="create, list and revoke the API's keys (stored hashed)")
    keys.add_argument("--file", type=Path, default=None,
                      help="the keys file; default: BILLSTREAM_API__KEYS_FILE, else ~/.config/billstream/api-keys.json")
    actions = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="a new key; the key itself is printed once, never stored")
    create.add_argument("name", help="who or what the key is for")
    create.add_argument("--rate", type=float, default=None, help="requests a second (default: the service's)")
    actions.add_parser("list", help="every key: id, name, created, revoked")
    revoke = actions.add_parser("revoke", help="refuse a key from the next request on")
    revoke.add_argument("key_id")
    keys.add_argument("--json", action="store_true")
    keys.set_defaults(run=run_keys)


def keys_path(settings: Settings, given: Path | None) -> Path:
    return given or settings.api.keys_file or Path.home() / ".config" / "billstream" / "api-keys.json"


def run_keys(settings: Settings, args: argparse.Namespace) -> int:
    from http_api.keys import KeyFile

    file = KeyFile(keys_path(settings, args.file))
    if args.action == "create":
        if args.rate is not None and args.rate <= 0:
            raise BillstreamError("--rate must be above 0")
        key, secret = file.create(args.name, rate_per_s=args.rate)
        if args.json:
            print(json.dumps({"id": key.id, "name": key.name, "key": secret}))
        else:
            print(secret)
            print(f"created key {key.id} ({key.name}) in {file.path}; the key above is shown only now",
                  file=sys.stderr)
        return 0
    if args.action == "revoke":
        key = file.revoke(args.key_id)
        print(json.dumps({"id": key.id, "revoked_at_ms": key.revoked_at_ms}) if args.json else f"revoked {key.id}")
        return 0
    listed = file.load()
    if args.json:
        print(json.dumps([{"id": k.id, "name": k.name, "created_at_ms": k.created_at_ms,
                           "revoked_at_ms": k.revoked_at_ms, "rate_per_s": k.rate_per_s} for k in listed]))
    else:
        for k in listed:
            print(f"{k.id}  {'revoked' if k.revoked else 'active ':7}  {k.name}")
    return 0


def run_api(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from http_api.app import create_app

    api = settings.api
    if api.keys_file is None and api.keys is None and not api.allow_anonymous:
        default = keys_path(settings, None)
        if default.exists():
            settings = settings.model_copy(update={"api": api.model_copy(update={"keys_file": default})})
        else:
            print("billstream api: no API keys and anonymous access is off, so every /v1 request will get 401; "
                  "create a key with `billstream api-keys create NAME`", file=sys.stderr)
    host, port = args.host or api.host, args.port or api.port
    print(f"billstream api: serving on http://{host}:{port}/ (docs: /docs)", file=sys.stderr, flush=True)
    uvicorn.run(create_app(settings), host=host, port=port, log_level=args.log_level, access_log=False,
                timeout_graceful_shutdown=10)
    return 0
