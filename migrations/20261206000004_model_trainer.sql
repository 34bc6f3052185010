-- Which trainer made a model version (issue 19 item 4): the native ALS of `stylecast embed`,
-- or factors trained by Spark MLlib and published by `stylecast embed --import`.
ALTER TABLE embedding_models
    ADD COLUMN trainer TEXT NOT NULL DEFAULT 'native' CHECK (trainer IN ('native', 'spark'));
COMMENT ON COLUMN embedding_models.trainer IS 'native (stylecast embed) or spark (spark/als.py, then stylecast embed --import).';
