-- Style codes for the generators loaded beside the default one (onnx.experiment_generators),
-- so that an experiment variant can paint with another generator. Each generator has its own
-- style encoder: a Magenta code is 100 numbers from an Inception network, ours 111 colour
-- statistics. The default encoder's codes stay where they were (influencer_photos,
-- influencer_styles); the Gram summaries come from VGG19 and are shared by all.

CREATE TABLE photo_style_codes (
    photo_id      BIGINT NOT NULL REFERENCES influencer_photos (id) ON DELETE CASCADE,
    model_version TEXT NOT NULL,
    style_code    REAL[] NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (photo_id, model_version)
);
COMMENT ON TABLE photo_style_codes IS 'Style code of a reference photo by an experiment generator''s encoder.';
COMMENT ON COLUMN photo_style_codes.model_version IS 'Version of the style encoder that computed style_code.';

CREATE TABLE influencer_style_codes (
    influencer_id BIGINT NOT NULL REFERENCES influencers (id) ON DELETE CASCADE,
    model_version TEXT NOT NULL,
    style_code    REAL[] NOT NULL,
    photo_count   INTEGER NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (influencer_id, model_version)
);
COMMENT ON TABLE influencer_style_codes IS 'An influencer''s mean style code by an experiment generator''s encoder (the default encoder''s is in influencer_styles).';
COMMENT ON COLUMN influencer_style_codes.model_version IS 'Version of the style encoder that computed style_code.';

COMMENT ON COLUMN analytics_experiments.settings IS 'What it changes (model_version, blend_temperature, feed_blend_slot, generator); {} serves the defaults.';
