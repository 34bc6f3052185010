-- Erasure (DELETE /v1/users/{user}): a person's rows are deleted; what may still circulate,
-- the images generated for them, keeps its provenance without the person. Generation
-- records lose the user (internal and external id), the input photo's hash and the cache
-- key derived from the photo, and say when the user was erased.
ALTER TABLE generations ALTER COLUMN user_external_id DROP NOT NULL,
                        ALTER COLUMN input_sha256 DROP NOT NULL,
                        ADD COLUMN cache_key TEXT,
                        ADD COLUMN user_erased_at TIMESTAMPTZ;
COMMENT ON COLUMN generations.cache_key IS 'The generation cache entry this image''s pixels live under (a hash of photo, blend and settings); removed when the user is erased.';
COMMENT ON COLUMN generations.user_erased_at IS 'When the user this image was generated for was erased; user_external_id, user_id and input_sha256 are then NULL.';
CREATE INDEX generations_user_external_idx ON generations (user_external_id) WHERE user_external_id IS NOT NULL;

-- The only trace an erased person leaves: a salted SHA-256 of their external id, so a
-- platform's replay of their old events can be refused for a while (ingest.refuse_erased_user_days)
-- and an audit can confirm that an erasure took place. The salt never leaves the database.
CREATE TABLE erasure_salt (
    singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    salt      BYTEA NOT NULL DEFAULT uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid())
);
INSERT INTO erasure_salt DEFAULT VALUES;
COMMENT ON TABLE erasure_salt IS 'The secret salt of erasure_log.subject_hash (32 random bytes, made at migrate).';

CREATE TABLE erasure_log (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subject_kind TEXT NOT NULL CHECK (subject_kind IN ('user', 'influencer')),
    subject_hash TEXT NOT NULL,
    erased_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    removed      JSONB NOT NULL
);
CREATE INDEX erasure_log_subject_idx ON erasure_log (subject_kind, subject_hash, erased_at);
COMMENT ON TABLE erasure_log IS 'One row per erasure: who (salted hash only), when, and how many rows of each kind were removed.';
COMMENT ON COLUMN erasure_log.subject_hash IS 'hex SHA-256 of erasure_salt.salt || external id.';
COMMENT ON COLUMN erasure_log.removed IS 'Rows removed per kind (events, follows, images, ...).';

