"""WSGI entry point for gunicorn (``web: gunicorn wsgi:app``); run ``relay worker`` beside it."""

from relay.boot import from_settings

app = from_settings().app()
