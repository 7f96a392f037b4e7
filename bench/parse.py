"""Parse-time benchmark: is decoding PHP-bracket form bodies linear?  (issue 7, point 4)

Not part of the test suite.  Run from the repository root::

    .venv/bin/python bench/parse.py                 # 16, 64 and 256 KiB of ``a[]=x&``
    .venv/bin/python bench/parse.py --repeat 9 --unit 'a[b][]=x&'

Method
------
For each size, a body of repeated ``a[]=x&`` keys (the fuzzer's body that held an HTTP thread for
227 s at 256 KiB) is decoded by :func:`relay.phpquery.parse_query` without any field limit, so
the whole body is parsed.  The **linear baseline** is :func:`urllib.parse.parse_qsl` on the same
body in the same run (it splits and unquotes, and parse_query does that plus the nesting).  Each
figure is the best of ``--repeat`` runs.  ``ratio`` = parse_query / parse_qsl: it stays about
constant across sizes when parsing is linear (it grew ~4x per 4x size when every ``a[]`` counted
the keys before it).  ``per KiB`` shows the same thing in absolute terms.  The last column is
what the handler really spends on such a body: :func:`relay.intake.bitrix24.decode_body` with the default
``ingress.max_fields`` (1000) counts ``&`` in the raw bytes and refuses it before parsing.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from relay.errors import BadRequest
from relay.intake.bitrix24 import BodyLimits, decode_body
from relay.phpquery import parse_query

FORM = "application/x-www-form-urlencoded"


def best(fn: Callable[[], Any], repeat: int) -> float:
    """The fastest of ``repeat`` runs, in seconds."""
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return min(times)


def refused(body: bytes) -> None:
    try:
        decode_body(body, FORM, BodyLimits())
    except BadRequest:
        return
    raise AssertionError("the handler accepted a body over ingress.max_fields")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="16,64,256", help="body sizes in KiB (default 16,64,256)")
    ap.add_argument("--unit", default="a[]=x&", help="the repeated key (default 'a[]=x&')")
    ap.add_argument("--repeat", type=int, default=5, help="runs per figure; the best counts (default 5)")
    args = ap.parse_args(argv)
    unit = args.unit.encode()
    print(f"python {sys.version.split()[0]}; body = {args.unit!r} repeated; best of {args.repeat}")
    print(f"{'size':>8} {'fields':>7} {'parse_query':>12} {'parse_qsl':>10} {'ratio':>6} {'per KiB':>9} "
          f"{'handler (refused)':>18}")
    for kib in (int(s) for s in args.sizes.split(",")):
        body = unit * (kib * 1024 // len(unit))
        text = body.decode()
        ours = best(lambda text=text: parse_query(text), args.repeat)
        baseline = best(lambda text=text: parse_qsl(text, keep_blank_values=True), args.repeat)
        handler = best(lambda body=body: refused(body), args.repeat)
        print(f"{kib:>5} KiB {body.count(b'&'):>7} {ours * 1000:>9.1f} ms {baseline * 1000:>7.1f} ms "
              f"{ours / baseline:>6.2f} {ours * 1e6 / kib:>6.0f} µs {handler * 1e6:>15.0f} µs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
