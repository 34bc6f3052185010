-- Core schema: people keyed by platform ids, the append-only event log, current state,
-- time-decayed affinity and API keys.

CREATE TABLE users (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    external_id TEXT NOT NULL UNIQUE,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
COMMENT ON TABLE users IS 'End users of the platforms, created the first time an event names them.';
COMMENT ON COLUMN users.external_id IS 'The platform''s own user id, as sent in events.';

CREATE TABLE influencers (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    external_id  TEXT NOT NULL UNIQUE,
    display_name TEXT,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
COMMENT ON TABLE influencers IS 'Influencers, created the first time an event names them.';
COMMENT ON COLUMN influencers.external_id IS 'The platform''s own influencer id, as sent in events.';

CREATE TYPE event_kind AS ENUM ('like', 'unlike', 'follow', 'unfollow', 'comment', 'view', 'share');

-- Partitioned by month of occurred_at. A unique index on a partitioned table must contain the
-- partition key, so cross-partition idempotency lives in event_keys below.
-- Event ids compare in byte order (COLLATE "C") everywhere: the service breaks ties
-- between events at the same instant by event id, and must agree with SQL.
CREATE TABLE engagement_events (
    event_id      TEXT COLLATE "C" NOT NULL,
    user_id       BIGINT NOT NULL,
    influencer_id BIGINT NOT NULL,
    kind          event_kind NOT NULL,
    occurred_at   TIMESTAMPTZ NOT NULL,
    post_id       TEXT,
    weight        REAL NOT NULL DEFAULT 1,
    received_at   TIMESTAMPTZ NOT NULL DEFAULT now()
) PARTITION BY RANGE (occurred_at);
COMMENT ON TABLE engagement_events IS 'Append-only log of every accepted engagement event, partitioned by month of occurred_at.';
COMMENT ON COLUMN engagement_events.event_id IS 'The platform''s idempotency key; unique across all partitions (see event_keys).';
COMMENT ON COLUMN engagement_events.weight IS 'Multiplier on the kind''s affinity weight sent by the platform (default 1).';
COMMENT ON COLUMN engagement_events.occurred_at IS 'When the engagement happened on the platform.';
COMMENT ON COLUMN engagement_events.received_at IS 'When Stylecast committed the event.';
CREATE INDEX engagement_events_user_idx ON engagement_events (user_id, occurred_at);
CREATE INDEX engagement_events_influencer_idx ON engagement_events (influencer_id, occurred_at);

CREATE TABLE event_keys (
    event_id    TEXT COLLATE "C" PRIMARY KEY,
    occurred_at TIMESTAMPTZ NOT NULL
);
COMMENT ON TABLE event_keys IS 'One row per accepted event id: the idempotency guard across partitions.';

-- Current state of toggles. An event changes a row only when it is newer than the row
-- (occurred_at, then event_id), so the state never depends on arrival order.
CREATE TABLE follows (
    user_id          BIGINT NOT NULL REFERENCES users (id),
    influencer_id    BIGINT NOT NULL REFERENCES influencers (id),
    active           BOOLEAN NOT NULL,
    weight           REAL NOT NULL,
    changed_at       TIMESTAMPTZ NOT NULL,
    changed_by_event TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (user_id, influencer_id)
) WITH (fillfactor = 80);
CREATE INDEX follows_influencer_active_idx ON follows (influencer_id) WHERE active;
COMMENT ON TABLE follows IS 'Current follow state per user and influencer (latest follow/unfollow wins).';
COMMENT ON COLUMN follows.active IS 'True when the latest event was a follow.';
COMMENT ON COLUMN follows.changed_at IS 'occurred_at of the event that set this state.';

CREATE TABLE likes (
    user_id          BIGINT NOT NULL REFERENCES users (id),
    influencer_id    BIGINT NOT NULL REFERENCES influencers (id),
    post_id          TEXT NOT NULL,
    active           BOOLEAN NOT NULL,
    weight           REAL NOT NULL,
    changed_at       TIMESTAMPTZ NOT NULL,
    changed_by_event TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (user_id, influencer_id, post_id)
) WITH (fillfactor = 80);
COMMENT ON TABLE likes IS 'Current like state per user, influencer and post (latest like/unlike wins); post_id is empty for likes without a post.';

-- Affinity score(u, i, t) = score_ref * 2^(-(t - epoch) / half_life). Storing values at a
-- fixed epoch makes every contribution a plain addition (order-free, no read-modify-write).
-- It has two parts: this table sums the additive kinds (views, comments, shares), and the
-- active rows of follows and likes contribute while they are active (the `affinity` view
-- below adds them up), so an unfollow or unlike takes back exactly what it undid.
CREATE TABLE affinity_activity (
    user_id       BIGINT NOT NULL REFERENCES users (id),
    influencer_id BIGINT NOT NULL REFERENCES influencers (id),
    score_ref     DOUBLE PRECISION NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, influencer_id)
) WITH (fillfactor = 80);  -- room for HOT updates: rows are updated in place often
CREATE INDEX affinity_activity_influencer_idx ON affinity_activity (influencer_id);
COMMENT ON TABLE affinity_activity IS 'Additive part of affinity (views, comments, shares), stored at the epoch 2020-01-01; read affinity through the affinity view.';
COMMENT ON COLUMN affinity_activity.score_ref IS 'Sum of kind weight * event weight * 2^((occurred_at - epoch) / half_life).';
CREATE INDEX likes_influencer_active_idx ON likes (influencer_id) WHERE active;

-- The parameters every score_ref was computed with. The service writes its configured
-- parameters here at start-up and, when they changed, rebuilds affinity from the event log.
CREATE TABLE affinity_params (
    singleton      BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    half_life_days DOUBLE PRECISION NOT NULL CHECK (half_life_days > 0),
    weights        JSONB NOT NULL
);
COMMENT ON TABLE affinity_params IS 'Half-life (days) and per-kind weights that affinity.score_ref was computed with.';
INSERT INTO affinity_params (half_life_days, weights)
VALUES (30, '{"view": 0.1, "like": 1, "comment": 2, "share": 3, "follow": 5}');

CREATE FUNCTION affinity_growth(at TIMESTAMPTZ) RETURNS DOUBLE PRECISION
LANGUAGE sql STABLE AS $$
    SELECT power(2.0, (extract(epoch FROM at) - 1577836800.0) / (p.half_life_days * 86400.0)) FROM affinity_params p
$$;
COMMENT ON FUNCTION affinity_growth IS '2^((at - 2020-01-01) / half_life): the factor a contribution made at `at` is stored with.';

CREATE FUNCTION affinity_now(score_ref DOUBLE PRECISION, at TIMESTAMPTZ DEFAULT now())
RETURNS DOUBLE PRECISION LANGUAGE sql STABLE AS $$
    SELECT score_ref / affinity_growth(at)
$$;
COMMENT ON FUNCTION affinity_now IS 'A stored (epoch) score decayed to the given time (default now).';

CREATE VIEW affinity AS
SELECT user_id, influencer_id, sum(score_ref) AS score_ref
FROM (
    SELECT user_id, influencer_id, score_ref FROM affinity_activity
    UNION ALL
    SELECT f.user_id, f.influencer_id,
           coalesce((p.weights ->> 'follow')::double precision, 0) * f.weight * affinity_growth(f.changed_at)
    FROM follows f CROSS JOIN affinity_params p WHERE f.active
    UNION ALL
    SELECT l.user_id, l.influencer_id,
           coalesce((p.weights ->> 'like')::double precision, 0) * l.weight * affinity_growth(l.changed_at)
    FROM likes l CROSS JOIN affinity_params p WHERE l.active
) parts
GROUP BY user_id, influencer_id;
COMMENT ON VIEW affinity IS 'Time-decayed user x influencer affinity at the epoch 2020-01-01: activity plus active follows and likes. affinity_now(score_ref) gives today''s value.';
COMMENT ON COLUMN affinity.score_ref IS 'Affinity stored at the epoch; affinity_now(score_ref) decays it to now.';

CREATE TABLE api_keys (
    id           UUID PRIMARY KEY,
    name         TEXT NOT NULL,
    salt         BYTEA NOT NULL,
    secret_hash  BYTEA NOT NULL,
    scopes       TEXT[] NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    revoked_at   TIMESTAMPTZ
);
COMMENT ON TABLE api_keys IS 'API keys: salted SHA-256 of the secret part only; the secret is shown once at creation.';
