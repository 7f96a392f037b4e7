"""Bitrix24 itself: the REST protocol (pure), the client (the only importer of requests/tenacity), the pacer."""
