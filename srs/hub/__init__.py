"""srs.hub: the environment inside JupyterHub (safe settings), where a researcher's kernel runs as
an unprivileged user that holds no key and cannot read the registry or the vault.

- ``srs.hub.tokens``: per-session tokens the hub issues for one person in one project.
- ``srs.hub.api``: the environment API, a hub-managed service that resolves a session's token
  and runs the real ``ResearchSession`` behind the access check (``python -m srs.hub.api``).
- ``srs.hub.client``: ``RemoteSession``, what ``srs.session()`` returns inside the hub (when
  ``SRS_API_URL`` is set): the same API, by JSON calls to that service.
- ``srs.hub.wire``: the JSON format of those calls (frames as Parquet, never pickle).

Nothing is imported here, so that loading one part (the kernel's client) does not load the others.
"""
