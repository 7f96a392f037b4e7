"""``relay serve``: gunicorn (gthread) serving the handler, with the worker running in-process.

The relay is built inside the gunicorn worker process (after the fork), its worker threads start
in ``post_worker_init`` and are stopped in ``worker_exit``, so SIGTERM lets the current round
finish before the process exits.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from gunicorn.app.base import BaseApplication

from relay.boot import Relay, from_settings
from relay.settings import Settings

log = logging.getLogger(__name__)


class RelayServer(BaseApplication):
    """A gunicorn application whose worker process also runs the relay's queue workers."""

    def __init__(self, settings: Settings, *, host: str, port: int, http_threads: int = 8,
                 worker_threads: int | None = None, run_worker: bool = True) -> None:
        self.settings = settings
        self.options = {
            "bind": f"{host}:{port}",
            "workers": 1,
            "worker_class": "gthread",
            "threads": http_threads,
            "timeout": 60,
            "graceful_timeout": 60,
            "keepalive": 5,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": settings.log_level.lower(),
            "post_worker_init": self._post_worker_init,
            "worker_exit": self._worker_exit,
        }
        self.worker_threads = worker_threads
        self.run_worker = run_worker
        self.relay: Relay | None = None
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        self.relay = from_settings(self.settings)
        return self.relay.app()

    def _post_worker_init(self, _worker: Any) -> None:
        if self.relay is None or not self.run_worker:
            return
        count = self.worker_threads or self.relay.config.file.worker.threads
        self.threads = self.relay.start_workers(count, self.stop)
        log.info("relay listening on %s with %d worker thread(s)", self.options["bind"], count)

    def _worker_exit(self, _server: Any, _worker: Any) -> None:
        self.stop.set()
        if self.relay is not None:
            self.relay.wake.set()
        for t in self.threads:
            t.join(timeout=55)
        if self.relay is not None:
            self.relay.store.close()
