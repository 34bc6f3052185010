-- Influencer styles from reference photos, and the provenance of every generated image.

ALTER TABLE influencers ADD COLUMN consent BOOLEAN NOT NULL DEFAULT FALSE;
COMMENT ON COLUMN influencers.consent IS 'Whether the influencer agreed to their style being used for generation.';
COMMENT ON COLUMN influencers.display_name IS 'Name shown to people; set with PUT /v1/influencers/{id}.';

CREATE TABLE influencer_photos (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    influencer_id BIGINT NOT NULL REFERENCES influencers (id),
    sha256        TEXT NOT NULL,
    width         INTEGER NOT NULL,
    height        INTEGER NOT NULL,
    image         BYTEA NOT NULL,
    style_code    REAL[] NOT NULL,
    gram_summary  JSONB NOT NULL,
    model_version TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (influencer_id, sha256)
);
COMMENT ON TABLE influencer_photos IS 'Reference photos of influencers (as uploaded) with the style code the encoder gave each.';
COMMENT ON COLUMN influencer_photos.model_version IS 'Version of the style encoder that computed style_code.';

CREATE TABLE influencer_styles (
    influencer_id BIGINT PRIMARY KEY REFERENCES influencers (id),
    style_code    REAL[] NOT NULL,
    photo_count   INTEGER NOT NULL,
    gram_summary  JSONB NOT NULL,
    model_version TEXT NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
COMMENT ON TABLE influencer_styles IS 'An influencer''s style: the mean style code over their photos, and a summary of their mean VGG19 Gram matrices.';
COMMENT ON COLUMN influencer_styles.gram_summary IS 'Per VGG19 layer (relu1_1..relu4_1), averaged over the photos: channels, mean channel energy, norm, off-diagonal share.';

CREATE TABLE generations (
    id               UUID PRIMARY KEY,
    user_id          BIGINT REFERENCES users (id),
    user_external_id TEXT NOT NULL,
    blend            JSONB NOT NULL,
    blend_source     TEXT NOT NULL CHECK (blend_source IN ('influencer', 'mix', 'interests', 'popularity')),
    strength         REAL NOT NULL,
    size             INTEGER NOT NULL,
    format           TEXT NOT NULL,
    model_version    TEXT NOT NULL,
    provider         TEXT NOT NULL,
    input_sha256     TEXT NOT NULL,
    output_sha256    TEXT NOT NULL,
    latency_ms       DOUBLE PRECISION NOT NULL,
    cache_hit        BOOLEAN NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX generations_created_idx ON generations (created_at);
CREATE INDEX generations_user_idx ON generations (user_id, created_at);
COMMENT ON TABLE generations IS 'One row per generated image served: who, which style blend, which model and execution provider, hashes and latency.';
COMMENT ON COLUMN generations.blend IS 'Influencer external id -> weight (sums to 1).';
COMMENT ON COLUMN generations.blend_source IS 'influencer / mix: chosen by the caller; interests: the user''s interest blend; popularity: cold-start blend.';
COMMENT ON COLUMN generations.model_version IS 'generator version + style encoder version.';
COMMENT ON COLUMN generations.latency_ms IS 'Server time from request to encoded image.';
