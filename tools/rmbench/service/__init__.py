"""The local ESP RainMaker claiming service: seed API on uvicorn + FastAPI, SQLite, local CAs.

Modules: ca (certificates), store (SQLite), logic (claim rules), faults (fault injection), app
(routes), server (startup), client (a pinned HTTPS client), accounts (users and boards),
harness (start it from tests), commands (CLI handlers).
"""
