-- When a TTL destroys the sandbox, whatever its state (RFC 3339; NULL = no TTL).
ALTER TABLE sandboxes ADD COLUMN auto_destroy_at TEXT;
