-- A deployment id, made when the database is migrated: every Redis key the service writes
-- (cache entries, the feed job stream) carries it, so a reset database, or a second
-- deployment on the same Redis, never reads another's entries. A database copied from
-- another (CREATE DATABASE ... TEMPLATE, as the tests do) is a deployment of its own: the
-- service makes a new id when the stored database oid is not its database's
-- (store::deployment_id).
CREATE TABLE deployment (
    singleton BOOLEAN PRIMARY KEY DEFAULT true CHECK (singleton),
    id UUID NOT NULL DEFAULT gen_random_uuid(),
    database_oid OID NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO deployment (database_oid) SELECT oid FROM pg_database WHERE datname = current_database();
COMMENT ON TABLE deployment IS 'This database''s deployment id (one row), made at migration; part of every Redis key.';
COMMENT ON COLUMN deployment.singleton IS 'Always true: the table holds one row.';
COMMENT ON COLUMN deployment.id IS 'Deployment id: the namespace of this database''s cache entries and feed jobs in Redis.';
COMMENT ON COLUMN deployment.database_oid IS 'The database the id was made in; a copy of the database gets a new id.';
COMMENT ON COLUMN deployment.created_at IS 'When the id was made.';

-- The derived interest signal, for analysts: `affinity` (internal ids, the epoch score) was
-- left out of the analyst grants, and this view gives it with external ids, decayed to now.
CREATE VIEW analytics_affinity AS
SELECT u.external_id AS user_id, i.external_id AS influencer, a.score_ref, affinity_now(a.score_ref) AS affinity_now
FROM affinity a JOIN users u ON u.id = a.user_id JOIN influencers i ON i.id = a.influencer_id;
COMMENT ON VIEW analytics_affinity IS 'Each user x influencer affinity (events, follows, likes, time-decayed) with external ids.';
COMMENT ON COLUMN analytics_affinity.user_id IS 'User external id.';
COMMENT ON COLUMN analytics_affinity.influencer IS 'Influencer external id.';
COMMENT ON COLUMN analytics_affinity.score_ref IS 'Affinity stored at the epoch 2020-01-01.';
COMMENT ON COLUMN analytics_affinity.affinity_now IS 'Affinity decayed to now (what recommendations and blends read).';

GRANT SELECT ON affinity, analytics_affinity TO stylecast_analyst;
