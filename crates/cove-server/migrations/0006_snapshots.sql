-- Snapshots: named stacks of read-only layers sandboxes boot from. `layers` is a JSON array
-- of host directories, lowest first; a snapshot taken from a sandbox owns its top layer,
-- <data-dir>/layers/<id>. Sandboxes name their snapshot in sandboxes.snapshot.
CREATE TABLE snapshots (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    id                TEXT NOT NULL UNIQUE,
    org_id            TEXT NOT NULL,
    name              TEXT NOT NULL,
    image_name        TEXT,
    state             TEXT NOT NULL,
    cpu               INTEGER NOT NULL,
    gpu               INTEGER NOT NULL,
    mem               INTEGER NOT NULL,
    disk              INTEGER NOT NULL,
    size              INTEGER,
    entrypoint        TEXT,
    source_sandbox_id TEXT,
    layers            TEXT NOT NULL,
    error_reason      TEXT,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    last_used_at      TEXT,
    UNIQUE (org_id, name)
);
