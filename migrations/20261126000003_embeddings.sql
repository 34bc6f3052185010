-- Interest embeddings: ALS factor vectors of users and influencers, per model version.
-- A rebuild writes a new version while readers keep using the current one, then flips
-- `is_current` in one transaction: readers never see a half-written model.
CREATE TABLE embedding_models (
    version        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    params         JSONB NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('building', 'ready', 'retired')),
    is_current     BOOLEAN NOT NULL DEFAULT FALSE,
    users          INTEGER NOT NULL DEFAULT 0,
    influencers    INTEGER NOT NULL DEFAULT 0,
    interactions   BIGINT NOT NULL DEFAULT 0,
    train_seconds  DOUBLE PRECISION,
    started_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    built_at       TIMESTAMPTZ
);
CREATE UNIQUE INDEX embedding_models_one_current ON embedding_models (is_current) WHERE is_current;
COMMENT ON TABLE embedding_models IS 'One row per ALS rebuild: parameters, sizes, timing; exactly one is current.';
COMMENT ON COLUMN embedding_models.params IS 'factors, regularization, alpha (confidence 1 + alpha * affinity), iterations, cg_steps, seed.';
COMMENT ON COLUMN embedding_models.built_at IS 'When the vectors were complete; affinity after this is folded in at request time.';

CREATE TABLE influencer_vectors (
    model_version BIGINT NOT NULL REFERENCES embedding_models (version) ON DELETE CASCADE,
    influencer_id BIGINT NOT NULL REFERENCES influencers (id),
    vector        REAL[] NOT NULL,
    PRIMARY KEY (model_version, influencer_id)
);
COMMENT ON TABLE influencer_vectors IS 'ALS item factors of influencers, per model version.';

CREATE TABLE user_vectors (
    model_version BIGINT NOT NULL REFERENCES embedding_models (version) ON DELETE CASCADE,
    user_id       BIGINT NOT NULL REFERENCES users (id),
    vector        REAL[] NOT NULL,
    PRIMARY KEY (model_version, user_id)
);
COMMENT ON TABLE user_vectors IS 'ALS user factors, per model version (users seen at build time; others are folded in on request).';
