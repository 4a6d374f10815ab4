"""The CLI's records: `deepfake history ...`, `--record [DB]` on image/folder/video, `deepfake web`'s options.

Hooked into `deepfake_client.cli` by a few calls; SQLAlchemy is imported only when used
(it is the `records` extra).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..errors import DeepfakeError, InvalidInputError
from .kinds import KINDS, VERDICTS

USAGE, INVALID, DB_ERROR = 2, 4, 7  # the CLI's exit codes (usage, invalid input, server/database error)


def _url(args: argparse.Namespace) -> str:
    from .store import default_url

    return args.db or default_url()


def _probability(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be from 0 to 1, got {text}")
    return value


# Options on other commands


def record_option() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--record", nargs="?", const="", metavar="DB",
                        help="keep a prediction record of each verdict, in DB (a SQLAlchemy URL or a SQLite path; "
                             "default $DEEPFAKE_RECORD_DB, else the data folder's records.sqlite)")
    return parent


def recording(client: Any, args: argparse.Namespace) -> Any:
    """The client, wrapped to record its verdicts when --record was given."""
    if getattr(args, "record", None) is None:
        return client
    from .sdk import RecordingClient
    from .store import RecordStore, default_url

    try:
        store = RecordStore(args.record or default_url())
    except BaseException:
        client.close()
        raise
    return RecordingClient(client, store, source="cli")


def add_web_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("prediction records (issue 20)")
    group.add_argument("--record-db", metavar="URL",
                       help="record every verdict here: a SQLAlchemy URL (postgresql://user@host/db) or a SQLite path "
                            "(default $DEEPFAKE_RECORD_DB, else records.sqlite in $DEEPFAKE_DATA_DIR or ~/.local/share/deepfake)")
    group.add_argument("--no-record", action="store_true", help="keep no records (and serve no history)")
    group.add_argument("--record-thumbnails", action="store_true", help="keep a 128 px JPEG thumbnail of each image")
    group.add_argument("--record-keep-days", type=float, metavar="DAYS", help="delete records older than this (hourly)")
    group.add_argument("--record-keep", type=int, metavar="N", help="keep at most the newest N records (hourly)")
    group.add_argument("--repository-json", metavar="PATH",
                       help="the served repository's repository.json, for the model fingerprints in each record")


def gateway_records(args: argparse.Namespace) -> Any:
    """The gateway's GatewayRecords from `deepfake web`'s options, or None with --no-record."""
    if args.no_record:
        return None
    from datetime import timedelta

    from .gateway import GatewayRecords
    from .store import RecordStore, default_url, redact

    store = RecordStore(args.record_db or default_url())
    older = timedelta(days=args.record_keep_days) if args.record_keep_days else None
    print(f"recording verdicts in {redact(store.url)}", file=sys.stderr)
    return GatewayRecords(store, thumbnails=args.record_thumbnails, retention=(older, args.record_keep),
                          repository_json=args.repository_json)


# deepfake history


def _filters(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("filters")
    group.add_argument("--since", help="ISO 8601 time, or an age back from now: 30m, 12h, 7d, 2w")
    group.add_argument("--until", help="ISO 8601 time, or an age")
    group.add_argument("--verdict", choices=VERDICTS, type=str.upper)
    group.add_argument("--kind", choices=KINDS)
    group.add_argument("--min-disagreement", type=_probability, metavar="P",
                       help="the models' p(fake) spread (max - min) at least P")
    group.add_argument("--untrained", action=argparse.BooleanOptionalAction, default=None,
                       help="only verdicts of untrained (--untrained) or trained (--no-untrained) weights")
    group.add_argument("--filename", help="part of the file name (case-insensitive)")
    group.add_argument("--sha256", help="the input's sha256")
    group.add_argument("--group", dest="group_id", help="a batch, video or webcam session id")


def _filter_of(args: argparse.Namespace) -> Any:
    from .query import make_filter

    return make_filter(since=args.since, until=args.until, verdict=args.verdict, kind=args.kind,
                       min_disagreement=args.min_disagreement, untrained=args.untrained, filename=args.filename,
                       sha256=args.sha256, group_id=args.group_id)


def add_history_parser(commands: Any) -> None:
    def database_options(parser: argparse.ArgumentParser, default: Any) -> None:
        parser.add_argument("--db", default=default,
                            help="the record database: a SQLAlchemy URL or a SQLite path (default: as `deepfake web`)")
        parser.add_argument("--json", action="store_true", default=default, help="print JSON instead of a table")

    # Given before or after the action; SUPPRESS keeps an action's parser from resetting them.
    base = argparse.ArgumentParser(add_help=False)
    database_options(base, argparse.SUPPRESS)
    history = commands.add_parser("history", help="prediction records: list, show, seen, delete, prune, export")
    database_options(history, None)
    actions = history.add_subparsers(dest="history_action", metavar="action")
    history.set_defaults(handler=None, offline=True, history_action="list", **_list_defaults())

    p = actions.add_parser("list", parents=[base], help="records, newest first (the default action)")
    _filters(p)
    p.add_argument("--limit", type=int, default=50, help="records per page (default %(default)s, at most 1000)")
    p.add_argument("--offset", type=int, default=0, help="records skipped (default %(default)s)")

    p = actions.add_parser("show", parents=[base], help="one record, whole")
    p.add_argument("id", type=int)

    p = actions.add_parser("seen", parents=[base], help="have we judged this input before? (by sha256)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--sha256")
    what.add_argument("--file", help="a file: its sha256 is looked up")

    p = actions.add_parser("delete", parents=[base], help="delete one record, or every record of an input")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--id", type=int)
    what.add_argument("--sha256")

    p = actions.add_parser("prune", parents=[base], help="retention: delete old records, keep the newest N")
    p.add_argument("--older-than", metavar="AGE", help="delete records older than this: 90d, 12h, 2w")
    p.add_argument("--keep", type=int, metavar="N", help="then keep only the newest N")

    p = actions.add_parser("export", parents=[base], help="the filtered records to CSV, Parquet or MLflow")
    _filters(p)
    out = p.add_mutually_exclusive_group(required=True)
    out.add_argument("--out", help="a .csv or .parquet file")
    out.add_argument("--mlflow", metavar="URI", help="an MLflow tracking URI (file:///path/mlruns, sqlite:///mlflow.db, http://...)")
    p.add_argument("--experiment", default="deepfake-history", help="MLflow experiment (default %(default)s)")
    p.add_argument("--window", default="1d", help="one MLflow run per window of this length (default %(default)s)")


def _list_defaults() -> dict[str, Any]:
    """`deepfake history` alone lists the newest records."""
    return {"since": None, "until": None, "verdict": None, "kind": None,
            "min_disagreement": None, "untrained": None, "filename": None, "sha256": None, "group_id": None,
            "limit": 50, "offset": 0}


def _table(records: list[dict[str, Any]]) -> str:
    from ..cli import format_table

    rows = [[r["id"], r["created_at"][:19].replace("T", " "), r["kind"], r["verdict"], r["fake_probability"],
             r["num_faces"], r["disagreement"], "yes" if r["untrained"] else "", r["filename"] or "",
             (r["sha256"] or "")[:12]] for r in records]
    return format_table(["id", "time (UTC)", "kind", "verdict", "p(fake)", "faces", "spread", "untrained", "file",
                         "sha256"], rows)


def run_history(args: argparse.Namespace) -> int:
    """`deepfake history ...`: exit 0, 2 on bad options, 4 on invalid input, 7 when the database fails."""
    try:
        from .store import RecordStore, RecordStoreError
    except ImportError as error:
        print(f"error: `deepfake history` needs the records extra (pip install 'deepfake-client[records]'): {error}",
              file=sys.stderr)
        return USAGE
    try:
        store = RecordStore(_url(args))
        try:
            return _history_action(store, args)
        finally:
            store.close()
    except InvalidInputError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return INVALID
    except (RecordStoreError, DeepfakeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return DB_ERROR


def _history_action(store: Any, args: argparse.Namespace) -> int:
    from .query import check_page, parse_age, parse_sha256

    action = args.history_action
    if action == "list":
        check_page(args.limit, args.offset)
        f = _filter_of(args)
        total, records = store.count(f), store.page(f, limit=args.limit, offset=args.offset)
        if args.json:
            print(json.dumps({"total": total, "records": records}, indent=2))
        else:
            print(_table(records))
            print(f"{len(records)} of {total} records (offset {args.offset})", file=sys.stderr)
    elif action == "show":
        record = store.get(args.id)
        if record is None:
            raise InvalidInputError(f"no record {args.id}")
        print(json.dumps(record, indent=2))
    elif action == "seen":
        if args.file:
            from .sdk import _file_sha256

            digest, _ = _file_sha256(Path(args.file))
            if digest is None:
                raise InvalidInputError(f"cannot read {args.file}")
        else:
            digest = parse_sha256(args.sha256)
        answer = store.seen(digest)
        if args.json:
            print(json.dumps(answer, indent=2))
        elif answer["seen"]:
            latest = answer["latest"]
            print(f"{digest}: seen {answer['count']} times, first {answer['first_seen']}, last {answer['last_seen']}; "
                  f"latest verdict {latest['verdict']} p(fake)={latest['fake_probability']} (record {latest['id']})")
        else:
            print(f"{digest}: never seen")
    elif action == "delete":
        deleted = store.delete(record_id=args.id, sha256=parse_sha256(args.sha256) if args.sha256 else None)
        print(json.dumps({"deleted": deleted}) if args.json else f"{deleted} records deleted")
    elif action == "prune":
        if args.older_than is None and args.keep is None:
            raise InvalidInputError("prune needs --older-than, --keep or both")
        older = parse_age(args.older_than, "--older-than") if args.older_than else None
        deleted = store.prune(older_than=older, keep=args.keep)
        print(json.dumps({"deleted": deleted}) if args.json else f"{deleted} records deleted")
    elif action == "export":
        return _export(store, args)
    return 0


def _export(store: Any, args: argparse.Namespace) -> int:
    from .export import export_mlflow, to_csv, to_parquet
    from .query import parse_age

    records = list(store.iterate(_filter_of(args)))
    if args.mlflow:
        runs = export_mlflow(records, args.mlflow, experiment=args.experiment, window=parse_age(args.window, "--window"))
        print(json.dumps({"records": len(records), "runs": runs}) if args.json
              else f"{len(records)} records in {len(runs)} MLflow runs ({args.mlflow}, experiment {args.experiment})")
        return 0
    out = Path(args.out)
    if out.suffix.lower() not in (".csv", ".parquet"):
        raise InvalidInputError(f"--out must end in .csv or .parquet, got {args.out!r}")
    try:
        if out.suffix.lower() == ".csv":
            out.write_text(to_csv(records))
        else:
            out.write_bytes(to_parquet(records))
    except OSError as error:
        raise InvalidInputError(f"cannot write {out}: {error.strerror or error}") from error
    print(json.dumps({"records": len(records), "out": str(out)}) if args.json else f"{len(records)} records in {out}")
    return 0
