"""The local ESP RainMaker claiming service: seed API on uvicorn + FastAPI, SQLite, local CAs.

Modules: ca (certificates), store (SQLite), logic (claim rules), faults (fault injection), app
(routes), server (startup), client (a pinned HTTPS client), accounts (users and boards),
mapping (user-node mapping), harness (start it from tests); its CLI handlers are
rmbench.commands.service.
"""

# The file a started service writes in its state folder: its URL (and process), for clients.
SERVER_INFO = "server.json"
