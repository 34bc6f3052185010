-- Measuring what works (issue 23): every served list (recommendations, a feed page, a
-- generation) is recorded with an id that events may echo as `served_id`; experiments split
-- users between variants of what the service can vary, by a hash of user and experiment.

CREATE TABLE experiments (
    name       TEXT COLLATE "C" PRIMARY KEY,
    -- [{"name": "control", "share": 0.5, "settings": {"model_version": 3, "blend_temperature": 0.5}}, …];
    -- the first variant is the control the results are compared with.
    variants   JSONB NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('running', 'stopped')),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at TIMESTAMPTZ,
    stopped_at TIMESTAMPTZ
);
-- At most one experiment runs at a time, so every served list names at most one variant.
CREATE UNIQUE INDEX experiments_one_running ON experiments ((true)) WHERE state = 'running';

-- Who was exposed to which variant, first written when a user is first served under it.
CREATE TABLE experiment_assignments (
    experiment       TEXT COLLATE "C" NOT NULL REFERENCES experiments (name) ON DELETE CASCADE,
    user_external_id TEXT COLLATE "C" NOT NULL,
    variant          TEXT NOT NULL,
    assigned_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (experiment, user_external_id)
);
CREATE INDEX experiment_assignments_user ON experiment_assignments (user_external_id);

-- One row per served list, written in batches off the request path. Rank n (1-based) is
-- element n of the arrays: influencers (external ids) for recommendations and feed pages
-- (NULL for a feed's blend slot), image_ids for feed pages (NULL while a slot renders) and
-- generations. External ids, so a list stays readable after ids are re-used; erasing an
-- influencer blanks them here.
CREATE TABLE served_lists (
    id               UUID PRIMARY KEY,
    surface          TEXT NOT NULL CHECK (surface IN ('recommendations', 'feed', 'generation')),
    user_external_id TEXT COLLATE "C" NOT NULL,
    influencers      TEXT[] NOT NULL,
    image_ids        TEXT[] NOT NULL,
    model_version    BIGINT,
    experiment       TEXT COLLATE "C",
    variant          TEXT,
    served_at        TIMESTAMPTZ NOT NULL
);
-- Lists arrive in time order, so a BRIN index serves retention and per-day scans at a tiny
-- fraction of a B-tree's cost per insert (impressions are the table written most often).
CREATE INDEX served_lists_served_at ON served_lists USING brin (served_at);
CREATE INDEX served_lists_user ON served_lists (user_external_id);
CREATE INDEX served_lists_experiment ON served_lists (experiment, variant) WHERE experiment IS NOT NULL;

ALTER TABLE engagement_events ADD COLUMN served_id UUID;
COMMENT ON COLUMN engagement_events.served_id IS 'The served list (recommendations, feed page or generation) the platform says led to this event.';
CREATE INDEX engagement_events_served_id ON engagement_events (served_id) WHERE served_id IS NOT NULL;

-- Engagement attributed to a served item: an event that echoes the list's id, names an item
-- of it (the influencer, or the image) and happens within 7 days of serving (5 minutes of
-- clock skew allowed before). One row per engaged (list, rank, kind).
CREATE VIEW analytics_served_attribution AS
SELECT DISTINCT s.id AS served_id, s.surface, s.experiment, s.variant, s.served_at,
       u.external_id AS user_id,
       coalesce(array_position(s.image_ids, e.image_id), array_position(s.influencers, i.external_id)) AS rank,
       e.kind::text AS kind
FROM served_lists s
JOIN engagement_events e ON e.served_id = s.id
JOIN users u ON u.id = e.user_id AND u.external_id = s.user_external_id
JOIN influencers i ON i.id = e.influencer_id
WHERE e.kind IN ('follow', 'like', 'comment', 'share', 'image_like')
  AND e.occurred_at >= s.served_at - interval '5 minutes'
  AND e.occurred_at < s.served_at + interval '7 days'
  AND coalesce(array_position(s.image_ids, e.image_id), array_position(s.influencers, i.external_id)) IS NOT NULL;
COMMENT ON VIEW analytics_served_attribution IS 'Engagements attributed to a served item: the event echoes the list''s served_id, names one of its items and falls within 7 days of serving.';
COMMENT ON COLUMN analytics_served_attribution.served_id IS 'The served list''s id (as returned in served_id / X-Generation-Id).';
COMMENT ON COLUMN analytics_served_attribution.surface IS 'recommendations, feed or generation.';
COMMENT ON COLUMN analytics_served_attribution.experiment IS 'The experiment that served it (NULL: the default settings).';
COMMENT ON COLUMN analytics_served_attribution.variant IS 'Its variant (NULL: the default settings).';
COMMENT ON COLUMN analytics_served_attribution.served_at IS 'When the list was served.';
COMMENT ON COLUMN analytics_served_attribution.user_id IS 'User external id.';
COMMENT ON COLUMN analytics_served_attribution.rank IS 'The 1-based position of the engaged item in the list.';
COMMENT ON COLUMN analytics_served_attribution.kind IS 'follow, like, comment, share or image_like.';

-- Wilson score interval at 95 % (z = 1.96) for k successes in n trials: the bounds stay in
-- [0, 1] and behave at rates near 0 or 1, where the normal approximation does not.
CREATE FUNCTION wilson_interval(k BIGINT, n BIGINT, OUT low FLOAT8, OUT high FLOAT8)
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN n > 0 THEN
               (k::float8 / n + 1.9208 / n - 1.96 * sqrt((k::float8 / n) * (1 - k::float8 / n) / n + 0.9604 / (n::float8 * n)))
               / (1 + 3.8416 / n) END,
           CASE WHEN n > 0 THEN
               (k::float8 / n + 1.9208 / n + 1.96 * sqrt((k::float8 / n) * (1 - k::float8 / n) / n + 0.9604 / (n::float8 * n)))
               / (1 + 3.8416 / n) END
$$;
COMMENT ON FUNCTION wilson_interval IS 'The 95 % Wilson score interval of a proportion k/n.';

CREATE VIEW analytics_served_ctr AS
WITH lists AS (
    SELECT date_trunc('day', served_at AT TIME ZONE 'UTC')::date AS day, surface,
           coalesce(experiment, '') AS experiment, coalesce(variant, 'default') AS variant,
           count(*) AS lists,
           sum(CASE WHEN surface = 'recommendations' THEN cardinality(influencers) ELSE cardinality(image_ids) END) AS impressions
    FROM served_lists GROUP BY 1, 2, 3, 4
), engaged AS (
    SELECT date_trunc('day', served_at AT TIME ZONE 'UTC')::date AS day, surface,
           coalesce(experiment, '') AS experiment, coalesce(variant, 'default') AS variant,
           count(DISTINCT (served_id, rank)) AS engaged_items
    FROM analytics_served_attribution GROUP BY 1, 2, 3, 4
)
SELECT l.day, l.surface, nullif(l.experiment, '') AS experiment, l.variant, l.lists, l.impressions,
       coalesce(e.engaged_items, 0) AS engagements,
       coalesce(e.engaged_items, 0)::float8 / nullif(l.impressions, 0) AS rate,
       w.low AS rate_low, w.high AS rate_high
FROM lists l
LEFT JOIN engaged e USING (day, surface, experiment, variant)
CROSS JOIN LATERAL wilson_interval(coalesce(e.engaged_items, 0), l.impressions) w;
COMMENT ON VIEW analytics_served_ctr IS 'Per UTC day of serving, surface and variant: served items and those engaged with (analytics_served_attribution), with the rate''s 95 % Wilson interval.';
COMMENT ON COLUMN analytics_served_ctr.day IS 'UTC day the lists were served.';
COMMENT ON COLUMN analytics_served_ctr.surface IS 'recommendations, feed or generation.';
COMMENT ON COLUMN analytics_served_ctr.experiment IS 'The experiment (NULL: served with the default settings).';
COMMENT ON COLUMN analytics_served_ctr.variant IS 'The variant, or ''default'' outside any experiment.';
COMMENT ON COLUMN analytics_served_ctr.lists IS 'Served lists (responses).';
COMMENT ON COLUMN analytics_served_ctr.impressions IS 'Items in them: influencers of a recommendations list, slots of a feed page, the image of a generation.';
COMMENT ON COLUMN analytics_served_ctr.engagements IS 'Items with at least one attributed follow, like, comment, share or image_like within 7 days.';
COMMENT ON COLUMN analytics_served_ctr.rate IS 'engagements / impressions.';
COMMENT ON COLUMN analytics_served_ctr.rate_low IS 'Lower bound of the rate''s 95 % Wilson interval.';
COMMENT ON COLUMN analytics_served_ctr.rate_high IS 'Upper bound of the rate''s 95 % Wilson interval.';

-- Per experiment and variant, with the user as the unit (users are what is randomised, so
-- rates over users are binomial; several lists of one user are not independent trials).
CREATE VIEW analytics_experiment_results AS
WITH served AS (
    SELECT experiment, variant, user_external_id,
           count(*) FILTER (WHERE surface = 'recommendations') AS rec_lists,
           count(*) FILTER (WHERE surface IN ('feed', 'generation')) AS image_lists,
           sum(CASE WHEN surface = 'recommendations' THEN cardinality(influencers) ELSE cardinality(image_ids) END) AS impressions
    FROM served_lists WHERE experiment IS NOT NULL
    GROUP BY 1, 2, 3
), engaged AS (
    SELECT experiment, variant, user_id AS user_external_id,
           bool_or(surface = 'recommendations' AND kind = 'follow') AS followed,
           bool_or(surface = 'recommendations' AND kind = 'like') AS liked,
           bool_or(surface IN ('feed', 'generation') AND kind = 'image_like') AS liked_image
    FROM analytics_served_attribution WHERE experiment IS NOT NULL
    GROUP BY 1, 2, 3
), per_variant AS (
    SELECT s.experiment, s.variant,
           count(*) AS users,
           sum(s.impressions)::bigint AS impressions,
           count(*) FILTER (WHERE s.rec_lists > 0) AS rec_users,
           count(*) FILTER (WHERE s.rec_lists > 0 AND e.followed) AS rec_followers,
           count(*) FILTER (WHERE s.rec_lists > 0 AND e.liked) AS rec_likers,
           count(*) FILTER (WHERE s.image_lists > 0) AS image_users,
           count(*) FILTER (WHERE s.image_lists > 0 AND e.liked_image) AS image_likers
    FROM served s LEFT JOIN engaged e USING (experiment, variant, user_external_id)
    GROUP BY 1, 2
), rates AS (
    SELECT p.*, x.variants->0->>'name' AS control,
           p.rec_followers::float8 / nullif(p.rec_users, 0) AS follow_rate,
           p.rec_likers::float8 / nullif(p.rec_users, 0) AS like_rate,
           p.image_likers::float8 / nullif(p.image_users, 0) AS image_like_rate
    FROM per_variant p JOIN experiments x ON x.name = p.experiment
)
SELECT r.experiment, r.variant, r.variant = r.control AS is_control, r.users, r.impressions,
       r.rec_users, r.follow_rate, fw.low AS follow_rate_low, fw.high AS follow_rate_high,
       r.like_rate, lw.low AS like_rate_low, lw.high AS like_rate_high,
       r.image_users, r.image_like_rate, iw.low AS image_like_rate_low, iw.high AS image_like_rate_high,
       r.follow_rate - c.follow_rate AS follow_rate_diff,
       r.follow_rate - c.follow_rate - 1.96 * sqrt(r.follow_rate * (1 - r.follow_rate) / nullif(r.rec_users, 0) + c.follow_rate * (1 - c.follow_rate) / nullif(c.rec_users, 0)) AS follow_rate_diff_low,
       r.follow_rate - c.follow_rate + 1.96 * sqrt(r.follow_rate * (1 - r.follow_rate) / nullif(r.rec_users, 0) + c.follow_rate * (1 - c.follow_rate) / nullif(c.rec_users, 0)) AS follow_rate_diff_high,
       r.like_rate - c.like_rate AS like_rate_diff,
       r.like_rate - c.like_rate - 1.96 * sqrt(r.like_rate * (1 - r.like_rate) / nullif(r.rec_users, 0) + c.like_rate * (1 - c.like_rate) / nullif(c.rec_users, 0)) AS like_rate_diff_low,
       r.like_rate - c.like_rate + 1.96 * sqrt(r.like_rate * (1 - r.like_rate) / nullif(r.rec_users, 0) + c.like_rate * (1 - c.like_rate) / nullif(c.rec_users, 0)) AS like_rate_diff_high,
       r.image_like_rate - c.image_like_rate AS image_like_rate_diff,
       r.image_like_rate - c.image_like_rate - 1.96 * sqrt(r.image_like_rate * (1 - r.image_like_rate) / nullif(r.image_users, 0) + c.image_like_rate * (1 - c.image_like_rate) / nullif(c.image_users, 0)) AS image_like_rate_diff_low,
       r.image_like_rate - c.image_like_rate + 1.96 * sqrt(r.image_like_rate * (1 - r.image_like_rate) / nullif(r.image_users, 0) + c.image_like_rate * (1 - c.image_like_rate) / nullif(c.image_users, 0)) AS image_like_rate_diff_high
FROM rates r
-- The control has no difference from itself: its diff columns are NULL.
LEFT JOIN rates c ON c.experiment = r.experiment AND c.variant = r.control AND r.variant <> r.control
CROSS JOIN LATERAL wilson_interval(r.rec_followers, r.rec_users) fw
CROSS JOIN LATERAL wilson_interval(r.rec_likers, r.rec_users) lw
CROSS JOIN LATERAL wilson_interval(r.image_likers, r.image_users) iw;
COMMENT ON VIEW analytics_experiment_results IS 'Per experiment and variant, users as the unit: follow and like rates on served recommendations, like rate on served images (feed pages, generations), each with a 95 % Wilson interval, and the difference from the control (the first variant) with a 95 % normal-approximation interval.';
COMMENT ON COLUMN analytics_experiment_results.experiment IS 'Experiment name.';
COMMENT ON COLUMN analytics_experiment_results.variant IS 'Variant name.';
COMMENT ON COLUMN analytics_experiment_results.is_control IS 'True for the control (the experiment''s first variant).';
COMMENT ON COLUMN analytics_experiment_results.users IS 'Users served anything under this variant.';
COMMENT ON COLUMN analytics_experiment_results.impressions IS 'Items served to them (influencers of recommendation lists, feed slots, generated images).';
COMMENT ON COLUMN analytics_experiment_results.rec_users IS 'Users served recommendations.';
COMMENT ON COLUMN analytics_experiment_results.follow_rate IS 'Share of rec_users who followed an influencer from a served list (within 7 days).';
COMMENT ON COLUMN analytics_experiment_results.follow_rate_low IS '95 % Wilson interval of follow_rate, lower bound.';
COMMENT ON COLUMN analytics_experiment_results.follow_rate_high IS '95 % Wilson interval of follow_rate, upper bound.';
COMMENT ON COLUMN analytics_experiment_results.like_rate IS 'Share of rec_users who liked a post of an influencer from a served list.';
COMMENT ON COLUMN analytics_experiment_results.like_rate_low IS '95 % Wilson interval of like_rate, lower bound.';
COMMENT ON COLUMN analytics_experiment_results.like_rate_high IS '95 % Wilson interval of like_rate, upper bound.';
COMMENT ON COLUMN analytics_experiment_results.image_users IS 'Users served feed pages or generations.';
COMMENT ON COLUMN analytics_experiment_results.image_like_rate IS 'Share of image_users who liked a served generated image.';
COMMENT ON COLUMN analytics_experiment_results.image_like_rate_low IS '95 % Wilson interval of image_like_rate, lower bound.';
COMMENT ON COLUMN analytics_experiment_results.image_like_rate_high IS '95 % Wilson interval of image_like_rate, upper bound.';
COMMENT ON COLUMN analytics_experiment_results.follow_rate_diff IS 'follow_rate minus the control''s (NULL for the control).';
COMMENT ON COLUMN analytics_experiment_results.follow_rate_diff_low IS '95 % interval of follow_rate_diff, lower bound (unpooled normal approximation).';
COMMENT ON COLUMN analytics_experiment_results.follow_rate_diff_high IS '95 % interval of follow_rate_diff, upper bound.';
COMMENT ON COLUMN analytics_experiment_results.like_rate_diff IS 'like_rate minus the control''s.';
COMMENT ON COLUMN analytics_experiment_results.like_rate_diff_low IS '95 % interval of like_rate_diff, lower bound.';
COMMENT ON COLUMN analytics_experiment_results.like_rate_diff_high IS '95 % interval of like_rate_diff, upper bound.';
COMMENT ON COLUMN analytics_experiment_results.image_like_rate_diff IS 'image_like_rate minus the control''s.';
COMMENT ON COLUMN analytics_experiment_results.image_like_rate_diff_low IS '95 % interval of image_like_rate_diff, lower bound.';
COMMENT ON COLUMN analytics_experiment_results.image_like_rate_diff_high IS '95 % interval of image_like_rate_diff, upper bound.';

CREATE VIEW analytics_experiments AS
SELECT x.name AS experiment, x.state, v.ordinality AS position, v.value->>'name' AS variant,
       (v.value->>'share')::float8 AS share, v.value->'settings' AS settings,
       x.started_at, x.stopped_at
FROM experiments x CROSS JOIN LATERAL jsonb_array_elements(x.variants) WITH ORDINALITY v;
COMMENT ON VIEW analytics_experiments IS 'Every experiment''s variants with their traffic shares and settings.';
COMMENT ON COLUMN analytics_experiments.experiment IS 'Experiment name.';
COMMENT ON COLUMN analytics_experiments.state IS 'running or stopped.';
COMMENT ON COLUMN analytics_experiments.position IS '1 = the control.';
COMMENT ON COLUMN analytics_experiments.variant IS 'Variant name.';
COMMENT ON COLUMN analytics_experiments.share IS 'Share of users assigned to it.';
COMMENT ON COLUMN analytics_experiments.settings IS 'What it changes (model_version, blend_temperature); {} serves the defaults.';
COMMENT ON COLUMN analytics_experiments.started_at IS 'When it last started running.';
COMMENT ON COLUMN analytics_experiments.stopped_at IS 'When it was stopped (NULL while running).';

GRANT SELECT ON analytics_served_attribution, analytics_served_ctr, analytics_experiment_results,
    analytics_experiments TO stylecast_analyst;
GRANT EXECUTE ON FUNCTION wilson_interval(BIGINT, BIGINT) TO stylecast_analyst;
