"""The ``relay`` command: serve, worker, jobs, replay, unlink, check, demo, emulator."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from relay.errors import ConfigError
from relay.redact import configure_logging
from relay.settings import Settings


def _settings() -> Settings:
    return Settings()


def cmd_serve(args: argparse.Namespace) -> int:
    """Web server plus in-process worker; the demo when no configuration exists yet."""
    settings = _settings()
    host, port = args.host or settings.host, args.port or settings.port
    if not settings.config.exists() and settings.config_is_default:
        from relay.demo import run_demo

        print(f"No {settings.config} yet: serving the demo against emulated portals "
              f"(copy config/relay.example.yaml to {settings.config} to relay real portals).", flush=True)
        return run_demo(host=host, port=port, keep_serving=True)
    from relay.serve import RelayServer

    configure_logging(settings.log_level, settings.log_format)
    if args.no_worker:  # a broken relay.yaml or mapping: exit 2 here, not in a gunicorn worker that fails to boot
        from relay.config import load_config
        from relay.settings import environment

        load_config(settings.config, environment())
    else:
        from relay.boot import from_settings

        relay = from_settings(settings)
        relay.check_target()  # a target without the link field: exit 2 before serving anything
        relay.store.close()
    RelayServer(settings, host=host, port=port, http_threads=args.http_threads,
                worker_threads=args.threads, run_worker=not args.no_worker).run()
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """Queue worker only (several may run against one database)."""
    from relay.boot import from_settings

    relay = from_settings(_settings())
    relay.check_target()
    if args.once:
        print(f"handled {relay.worker().drain(timeout=args.timeout)} job(s)")
        return 0
    stop = threading.Event()

    def _stop(_sig: int, _frame: object) -> None:
        stop.set()
        relay.wake.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    threads = relay.start_workers(args.threads or relay.config.file.worker.threads, stop)
    while any(t.is_alive() for t in threads):
        for t in threads:
            t.join(timeout=0.5)
    relay.store.close()
    return 0


def parse_since(text: str) -> float:
    """ISO 8601 date or date-time (UTC when no offset) -> unix time."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--since: not an ISO 8601 time: {text!r}") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def cmd_jobs(args: argparse.Namespace) -> int:
    """List jobs with status and last error."""
    from relay.store import Store

    store = Store(_settings().database_url)
    jobs = store.jobs(status=args.status, kind=args.kind, source_id=args.source, deal_id=args.deal, limit=args.limit)
    if args.json:
        print(json.dumps([{k: v for k, v in j.__dict__.items() if k not in ("event_token", "payload")} for j in jobs],
                         ensure_ascii=False, indent=1))
        return 0
    print(f"{'ID':>6} {'KIND':6} {'SOURCE':12} {'DEAL':>8} {'STATUS':8} {'TRY':>3} {'EVT':>3} "
          f"{'OUTCOME':10} {'TARGET':>8} {'UPDATED (UTC)':19}  LAST ERROR")
    for j in jobs:
        print(f"{j.id:>6} {j.kind:6} {j.source_id[:12]:12} {j.deal_id:>8} {j.status:8} {j.attempts:>3} {j.events:>3} "
              f"{(j.outcome or '')[:10]:10} {(j.target_deal_id or ''):>8} {_when(j.updated_at)}  "
              f"{(j.last_error or '')[:120]}")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    """Queue finished (e.g. dead) jobs again: one by id, or every dead one matching filters."""
    from relay.store import Store

    store = Store(_settings().database_url)
    if args.dead:
        try:
            since = parse_since(args.since) if args.since else None
        except ValueError as exc:
            print(str(exc), file=sys.stderr)
            return 2
        done = store.replay_dead(source_id=args.source, since=since,
                                 progress=lambda n, total: _progress(f"replayed {n} of {total} dead job(s)"))
        for job_id, queued in done:
            print(f"job {job_id} replayed as job {queued.job_id}" + (" (merged)" if queued.merged else ""))
        print(f"{len(done)} dead job(s) replayed")
        return 0
    if args.job_id is None:
        print("give a JOB_ID or --dead", file=sys.stderr)
        return 2
    try:
        queued = store.replay(args.job_id)
    except KeyError:
        print(f"no job {args.job_id}", file=sys.stderr)
        return 1
    merged = " (merged into a waiting job)" if queued.merged else ""
    print(f"job {args.job_id} replayed as job {queued.job_id}{merged}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    """Run the recovery sweep now (all sources or one) and print what it queued."""
    from relay.boot import from_settings
    from relay.sweep import sweep_source

    relay = from_settings(_settings())
    ids = [args.source] if args.source else [s.id for s in relay.config.file.sources]
    for source_id in ids:
        if relay.config.source(source_id) is None:
            print(f"unknown source {source_id}", file=sys.stderr)
            return 1
        def listed(n: int, total: int, source_id: str = source_id) -> None:
            _progress(f"{source_id}: listed {n} of {total} deals")

        result = sweep_source(relay.config, relay.store, relay.pipeline.sources[source_id], source_id, force=True,
                              progress=listed)
        print(f"{source_id}: {result.summary() if result else 'busy'}")
    return 0


def cmd_unlink(args: argparse.Namespace) -> int:
    """Forget the target deal of a source deal (the next transfer creates a new one)."""
    from relay.store import Store

    ok = Store(_settings().database_url).unlink(args.source, args.deal)
    print("unlinked" if ok else "no link for that deal")
    return 0 if ok else 1


def cmd_keygen(_args: argparse.Namespace) -> int:
    """Print a fresh Fernet key for ``RELAY_TOKEN_KEY``."""
    from relay.vault import new_key

    print(new_key())
    return 0


def cmd_app(args: argparse.Namespace) -> int:
    """Application sources: whether each is installed (no token is printed), or forget one's install."""
    from relay.config import load_config
    from relay.settings import environment
    from relay.store import Store

    settings = _settings()
    config = load_config(settings.config, environment())
    store = Store(settings.database_url)
    apps = [s for s in config.file.sources if s.mode == "app" and (args.source in (None, s.id))]
    if args.source and not apps:
        print(f"no application source {args.source!r} (mode: app) in {config.path}", file=sys.stderr)
        return 2
    if args.action == "forget":
        if not args.source:
            print("give the SOURCE whose install to forget", file=sys.stderr)
            return 2
        print(f"{args.source}: " + ("install forgotten (tokens deleted)" if store.forget_portal(args.source)
                                    else "was not installed"))
        return 0
    for s in apps:
        row = store.portal(s.id)
        state = "not installed" if row is None else (
            f"installed on {row.domain}, tokens version {row.version}, "
            f"{'robot and events set up' if row.setup_done else 'robot and events not set up yet'}")
        print(f"{s.id}: {state}")
    return 0


def cmd_check(_args: argparse.Namespace) -> int:
    """Validate relay.yaml and every mapping; print a summary without secrets."""
    from relay.config import load_config
    from relay.mapping.onec import describe as describe_onec
    from relay.settings import environment

    config = load_config(_settings().config, environment())
    print(f"{config.path}: OK — target + {len(config.file.sources)} source(s)"
          + (f" + {len(config.file.onec)} 1C base(s)" if config.file.onec else ""))
    for s in config.file.sources:
        kinds = [k for k, v in (("events", s.application_token), ("robot", s.robot_key)) if v is not None]
        spec = config.mappings[s.id]
        accepts = ', '.join(kinds) or 'nothing (set application_token or robot_key)'
        if s.mode == "app":
            accepts = (f"an application on {s.domain} (install path {config.file.public_url}/b24/{s.id}/install; "
                       "`relay app status` tells whether it is installed)")
        print(f"  source {s.id}: accepts {accepts}; mapping {s.mapping} ({len(spec.fields)} fields, "
              f"link {spec.link_field})")
    for base in config.file.onec:
        how = ["token"] if base.token is not None else []
        how += [f"addresses {', '.join(base.allow_ips)}"] if base.allow_ips else []
        print(f"  1C base {base.id}: accepts calls by {' or '.join(how)}; zone {base.timezone}; mapping {base.mapping}")
        for line in describe_onec(config.onec_mappings[base.id]):
            print(f"    {line}")
    return 0


def _progress(text: str) -> None:
    """Progress of a long command, on stderr (stdout stays the result)."""
    print(f"… {text}", file=sys.stderr, flush=True)


def cmd_mapping_check(args: argparse.Namespace) -> int:
    """Check mappings against both live portals; exit 0 when clean, 1 with findings."""
    from relay.boot import from_settings
    from relay.settings import environment
    from relay.sync.mapcheck import check_onec, check_source, fix_link_field

    relay = from_settings(_settings())
    config = relay.config
    ids = [args.source] if args.source else [s.id for s in config.file.sources] + [b.id for b in config.file.onec]
    if args.source and config.source(args.source) is None and config.onec_base(args.source) is None:
        print(f"unknown source or 1C base {args.source!r}", file=sys.stderr)
        return 2
    say = None if args.quiet else _progress
    status = 0
    reports = []
    for source_id in ids:
        if config.onec_base(source_id) is not None:
            report = check_onec(config, environment(), source_id, relay.pipeline.target, say)
        else:
            report = check_source(config, environment(), source_id, relay.pipeline.sources[source_id],
                                  relay.pipeline.target, say)
        if args.fix and any(f.fixable for f in report.findings):
            print(fix_link_field(relay.pipeline.target, relay.config.mappings[source_id].link_field))
            report = check_source(relay.config, environment(), source_id, relay.pipeline.sources[source_id],
                                  relay.pipeline.target, say)
        relay.store.save_check(source_id, report.as_dict())
        reports.append(report)
        status = status or (0 if report.clean else 1)
        if args.json:
            continue
        if report.error:
            print(f"{report.path}: {report.error}")
        for finding in report.findings:
            print(finding.text())
        if report.clean:
            print(f"{report.path}: OK — every reference exists on both portals")
        elif any(f.fixable for f in report.findings) and not args.fix:
            print("(run `relay mapping check --fix` to create the link field)")
    if args.json:
        print(json.dumps([r.as_dict() for r in reports], ensure_ascii=False, indent=1))
    relay.store.close()
    return status


def cmd_mapping_init(args: argparse.Namespace) -> int:
    """Draft a source's mapping by matching the two portals; write it where relay.yaml points (or --output)."""
    from relay.boot import load_file_only, portal_clients
    from relay.mapping.draft import draft_mapping
    from relay.settings import environment
    from relay.store import Store
    from relay.sync.facts import read_facts

    settings = _settings()
    config = load_file_only(settings.config, environment())
    src = config.source(args.source)
    if src is None:
        print(f"unknown source {args.source!r} in {config.path}", file=sys.stderr)
        return 2
    out = Path(args.output) if args.output else (src.mapping if src.mapping.is_absolute()
                                                  else config.path.parent / src.mapping)
    if out.exists() and not args.force and str(out) != "-":
        print(f"{out} exists: give --force to overwrite it, or --output PATH (- for stdout)", file=sys.stderr)
        return 1
    store = Store(settings.database_url)
    target, sources = portal_clients(config, store)
    say = None if args.quiet else _progress
    source_facts = read_facts(sources[src.id], all_products=True, progress=say)
    target_facts = read_facts(target, all_products=True, progress=say)
    source_facts.domain, target_facts.domain = src.host, config.target.host
    text, todo = draft_mapping(src.id, source_facts, target_facts,
                               written=datetime.now(tz=UTC).strftime("%Y-%m-%d %H:%M UTC"))
    store.close()
    if str(out) == "-":
        sys.stdout.write(text)
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out}: {todo} line(s) marked TODO to fill in; then run `relay mapping check --source {src.id}`")
    return 0


def cmd_preview(args: argparse.Namespace) -> int:
    """Dry run of one transfer: what would be written, and the diff against the linked target record."""
    from relay.boot import from_settings
    from relay.sync.preview import preview_deal, preview_record, render

    relay = from_settings(_settings())
    target_host = relay.config.target.host
    if args.job is not None:
        job = relay.store.job(args.job)
        if job is None:
            print(f"no job {args.job}", file=sys.stderr)
            return 1
        result = preview_record(relay.config, relay.store, relay.pipeline.target, job)
    else:
        if not args.source or not args.deal:
            print("give --source ID DEAL_ID (a partner deal) or --job JOB_ID (a stored 1C record)", file=sys.stderr)
            return 2
        if relay.config.source(args.source) is None:
            print(f"unknown source {args.source!r}", file=sys.stderr)
            return 2
        result = preview_deal(relay.config, relay.store, relay.pipeline.sources[args.source], relay.pipeline.target,
                              args.source, args.deal)
    relay.store.close()
    print(json.dumps(result.as_dict(), ensure_ascii=False, indent=1) if args.json else render(result, target_host),
          end="" if not args.json else "\n")
    return 1 if result.action == "error" else 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Relay a sample deal between two emulated portals and print the result."""
    from relay.demo import run_demo

    return run_demo(host="127.0.0.1", port=args.port, keep_serving=args.serve)


def cmd_emulator(args: argparse.Namespace) -> int:
    """Serve an emulated source/target portal pair (for curl and harnesses)."""
    from relay.emulator.__main__ import main as emulator_main

    return int(emulator_main(args.rest) or 0)


def parser() -> argparse.ArgumentParser:
    """The argument parser (documented in the README)."""
    p = argparse.ArgumentParser(prog="relay", description="Relay Bitrix24 deals to an ESB portal, exactly once.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="web server + in-process worker (gunicorn)")
    s.add_argument("--host", help="bind address (default RELAY_HOST or 127.0.0.1)")
    s.add_argument("--port", type=int, help="port (default RELAY_PORT or 8000)")
    s.add_argument("--threads", type=int, help="worker threads (default worker.threads)")
    s.add_argument("--http-threads", type=int, default=8, help="HTTP threads (default 8)")
    s.add_argument("--no-worker", action="store_true", help="serve the handler only")
    s.set_defaults(func=cmd_serve)

    w = sub.add_parser("worker", help="run the queue worker only")
    w.add_argument("--threads", type=int, help="worker threads (default worker.threads)")
    w.add_argument("--once", action="store_true", help="run until nothing is ready, then exit")
    w.add_argument("--timeout", type=float, default=300, help="with --once: stop after this many seconds")
    w.set_defaults(func=cmd_worker)

    j = sub.add_parser("jobs", help="list jobs with status and last error")
    j.add_argument("--status", choices=["pending", "running", "done", "skipped", "dead", "merged"])
    j.add_argument("--kind", choices=["sync", "notify"])
    j.add_argument("--source")
    j.add_argument("--deal")
    j.add_argument("--limit", type=int, default=50)
    j.add_argument("--json", action="store_true")
    j.set_defaults(func=cmd_jobs)

    r = sub.add_parser("replay", help="queue a finished or dead job again (or all dead ones)")
    r.add_argument("job_id", type=int, nargs="?")
    r.add_argument("--dead", action="store_true", help="replay every dead sync job (see --source, --since)")
    r.add_argument("--source", help="with --dead: only this source")
    r.add_argument("--since", help="with --dead: only jobs that died since TIME (ISO 8601, e.g. 2026-11-22T10:00)")
    r.set_defaults(func=cmd_replay)

    sw = sub.add_parser("sweep", help="run the recovery sweep now")
    sw.add_argument("--source", help="only this source")
    sw.set_defaults(func=cmd_sweep)

    u = sub.add_parser("unlink", help="forget the target deal of a source deal")
    u.add_argument("source")
    u.add_argument("deal")
    u.set_defaults(func=cmd_unlink)

    k = sub.add_parser("keygen", help="print a new token_key for RELAY_TOKEN_KEY (application sources)")
    k.set_defaults(func=cmd_keygen)

    a = sub.add_parser("app", help="application sources: status, or forget an install")
    a.add_argument("action", choices=["status", "forget"])
    a.add_argument("source", nargs="?")
    a.set_defaults(func=cmd_app)

    c = sub.add_parser("check", help="validate relay.yaml and the mappings")
    c.set_defaults(func=cmd_check)

    m = sub.add_parser("mapping", help="check a mapping against both portals, or draft one")
    msub = m.add_subparsers(dest="mapping_command", required=True)
    mc = msub.add_parser("check", help="check every reference of the mappings on the live portals")
    mc.add_argument("--source", help="only this source")
    mc.add_argument("--fix", action="store_true", help="create a missing link field on the target")
    mc.add_argument("--json", action="store_true", help="print the findings as JSON")
    mc.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    mc.set_defaults(func=cmd_mapping_check)
    mi = msub.add_parser("init", help="draft a mapping by matching the two portals")
    mi.add_argument("--source", required=True, help="the source whose mapping to draft")
    mi.add_argument("--output", help="write here instead of the file relay.yaml names (- for stdout)")
    mi.add_argument("--force", action="store_true", help="overwrite an existing file")
    mi.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    mi.set_defaults(func=cmd_mapping_init)

    pv = sub.add_parser("preview", help="dry run: what a transfer would write (nothing is written)")
    pv.add_argument("deal", nargs="?", help="the source deal id (with --source)")
    pv.add_argument("--source", help="the partner source of the deal")
    pv.add_argument("--job", type=int, help="instead: the stored 1C record of this job")
    pv.add_argument("--json", action="store_true", help="print the preview as JSON")
    pv.set_defaults(func=cmd_preview)

    d = sub.add_parser("demo", help="relay a sample deal between emulated portals")
    d.add_argument("--port", type=int, default=0, help="relay port (default: any free port)")
    d.add_argument("--serve", action="store_true", help="keep serving after the sample deal")
    d.set_defaults(func=cmd_demo)

    e = sub.add_parser("emulator", help="serve an emulated Bitrix24 portal pair", add_help=False)
    e.add_argument("rest", nargs=argparse.REMAINDER)
    e.set_defaults(func=cmd_emulator)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``relay`` console script."""
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
