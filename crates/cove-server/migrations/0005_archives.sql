-- The object holding the sandbox's files as of its last completed archive (NULL: none). Set
-- only once the upload is durable, so `archiving` with a key means the files are safe in
-- object storage, and without one that the local files are still the only copy.
ALTER TABLE sandboxes ADD COLUMN archive_key TEXT;
