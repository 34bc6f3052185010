-- Analyst views and the read-only role that may query them (and nothing else).
-- The view bodies live here (migrations create them); sql/README.md lists them and
-- sql/examples/ holds queries built on them.

CREATE VIEW analytics_daily_engagement AS
SELECT date_trunc('day', e.occurred_at AT TIME ZONE 'UTC')::date AS day,
       i.external_id AS influencer,
       e.kind::text AS kind,
       count(*) AS events,
       count(DISTINCT e.user_id) AS users
FROM engagement_events e JOIN influencers i ON i.id = e.influencer_id
GROUP BY 1, 2, 3;
COMMENT ON VIEW analytics_daily_engagement IS 'Engagement events per UTC day, influencer and kind.';
COMMENT ON COLUMN analytics_daily_engagement.day IS 'UTC day of occurred_at.';
COMMENT ON COLUMN analytics_daily_engagement.influencer IS 'Influencer external id.';
COMMENT ON COLUMN analytics_daily_engagement.kind IS 'Event kind (like, unlike, follow, unfollow, comment, view, share).';
COMMENT ON COLUMN analytics_daily_engagement.events IS 'Events that day.';
COMMENT ON COLUMN analytics_daily_engagement.users IS 'Distinct users behind them.';

CREATE VIEW analytics_follower_growth AS
SELECT day, influencer, follows, unfollows, follows - unfollows AS net,
       (sum(follows - unfollows) OVER (PARTITION BY influencer ORDER BY day))::bigint AS cumulative_net
FROM (
    SELECT date_trunc('day', e.occurred_at AT TIME ZONE 'UTC')::date AS day,
           i.external_id AS influencer,
           count(*) FILTER (WHERE e.kind = 'follow') AS follows,
           count(*) FILTER (WHERE e.kind = 'unfollow') AS unfollows
    FROM engagement_events e JOIN influencers i ON i.id = e.influencer_id
    WHERE e.kind IN ('follow', 'unfollow')
    GROUP BY 1, 2
) daily;
COMMENT ON VIEW analytics_follower_growth IS 'Follow and unfollow events per influencer and UTC day, with the running net.';
COMMENT ON COLUMN analytics_follower_growth.day IS 'UTC day.';
COMMENT ON COLUMN analytics_follower_growth.influencer IS 'Influencer external id.';
COMMENT ON COLUMN analytics_follower_growth.follows IS 'Follow events that day.';
COMMENT ON COLUMN analytics_follower_growth.unfollows IS 'Unfollow events that day.';
COMMENT ON COLUMN analytics_follower_growth.net IS 'follows - unfollows that day.';
COMMENT ON COLUMN analytics_follower_growth.cumulative_net IS 'Running sum of net up to that day.';

CREATE VIEW analytics_user_top_influencers AS
SELECT u.external_id AS user_id, i.external_id AS influencer, affinity_now(a.score_ref) AS affinity,
       rank() OVER (PARTITION BY a.user_id ORDER BY a.score_ref DESC) AS rank
FROM affinity a
JOIN users u ON u.id = a.user_id
JOIN influencers i ON i.id = a.influencer_id
WHERE a.score_ref > 0;
COMMENT ON VIEW analytics_user_top_influencers IS 'Every user''s influencers ranked by time-decayed affinity (filter rank <= N).';
COMMENT ON COLUMN analytics_user_top_influencers.user_id IS 'User external id.';
COMMENT ON COLUMN analytics_user_top_influencers.influencer IS 'Influencer external id.';
COMMENT ON COLUMN analytics_user_top_influencers.affinity IS 'Affinity decayed to now.';
COMMENT ON COLUMN analytics_user_top_influencers.rank IS '1 = the user''s strongest affinity.';

CREATE VIEW analytics_recommendation_coverage AS
SELECT m.version AS model_version, m.built_at, m.users AS users_in_model,
       (SELECT count(*) FROM users) AS users_total,
       m.influencers AS influencers_in_model,
       (SELECT count(*) FROM influencers) AS influencers_total,
       m.users::float8 / greatest((SELECT count(*) FROM users), 1) AS user_coverage,
       m.influencers::float8 / greatest((SELECT count(*) FROM influencers), 1) AS influencer_coverage,
       m.interactions, m.train_seconds, m.is_current
FROM embedding_models m WHERE m.status <> 'building';
COMMENT ON VIEW analytics_recommendation_coverage IS 'How much of the user and influencer base each embedding model covers (others get folded in or popularity).';
COMMENT ON COLUMN analytics_recommendation_coverage.model_version IS 'Embedding model version.';
COMMENT ON COLUMN analytics_recommendation_coverage.built_at IS 'When the model was published.';
COMMENT ON COLUMN analytics_recommendation_coverage.users_in_model IS 'Users with a stored vector.';
COMMENT ON COLUMN analytics_recommendation_coverage.users_total IS 'Users known now.';
COMMENT ON COLUMN analytics_recommendation_coverage.influencers_in_model IS 'Influencers with a stored vector.';
COMMENT ON COLUMN analytics_recommendation_coverage.influencers_total IS 'Influencers known now.';
COMMENT ON COLUMN analytics_recommendation_coverage.user_coverage IS 'users_in_model / users_total.';
COMMENT ON COLUMN analytics_recommendation_coverage.influencer_coverage IS 'influencers_in_model / influencers_total.';
COMMENT ON COLUMN analytics_recommendation_coverage.interactions IS 'Positive user x influencer cells trained on.';
COMMENT ON COLUMN analytics_recommendation_coverage.train_seconds IS 'ALS training time.';
COMMENT ON COLUMN analytics_recommendation_coverage.is_current IS 'Whether the service serves this model now.';

CREATE VIEW analytics_generations_daily AS
SELECT date_trunc('day', created_at AT TIME ZONE 'UTC')::date AS day, model_version, provider,
       count(*) AS generations,
       count(*) FILTER (WHERE cache_hit) AS cache_hits,
       count(*) FILTER (WHERE cache_hit)::float8 / count(*) AS cache_hit_ratio,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms) AS latency_p50_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) AS latency_p95_ms,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms) AS latency_p99_ms
FROM generations GROUP BY 1, 2, 3;
COMMENT ON VIEW analytics_generations_daily IS 'Generated images per UTC day, model version and execution provider, with cache hit ratio and latency percentiles.';
COMMENT ON COLUMN analytics_generations_daily.day IS 'UTC day.';
COMMENT ON COLUMN analytics_generations_daily.model_version IS 'generator+encoder versions.';
COMMENT ON COLUMN analytics_generations_daily.provider IS 'Execution provider that ran (cpu, cuda).';
COMMENT ON COLUMN analytics_generations_daily.generations IS 'Images served.';
COMMENT ON COLUMN analytics_generations_daily.cache_hits IS 'Served from the cache.';
COMMENT ON COLUMN analytics_generations_daily.cache_hit_ratio IS 'cache_hits / generations.';
COMMENT ON COLUMN analytics_generations_daily.latency_p50_ms IS 'Median server latency (ms).';
COMMENT ON COLUMN analytics_generations_daily.latency_p95_ms IS '95th percentile server latency (ms).';
COMMENT ON COLUMN analytics_generations_daily.latency_p99_ms IS '99th percentile server latency (ms).';

CREATE VIEW analytics_generations AS
SELECT g.id, g.created_at, g.user_external_id AS user_id, g.blend, g.blend_source, g.strength, g.size, g.format,
       g.model_version, g.provider, g.latency_ms, g.cache_hit
FROM generations g;
COMMENT ON VIEW analytics_generations IS 'Every generated image (no hashes of inputs): who, which blend, which model, how fast.';
COMMENT ON COLUMN analytics_generations.id IS 'Generation id (X-Generation-Id).';
COMMENT ON COLUMN analytics_generations.created_at IS 'When it was served.';
COMMENT ON COLUMN analytics_generations.user_id IS 'User external id.';
COMMENT ON COLUMN analytics_generations.blend IS 'Influencer external id -> weight.';
COMMENT ON COLUMN analytics_generations.blend_source IS 'influencer, mix, interests or popularity.';
COMMENT ON COLUMN analytics_generations.strength IS 'Style strength in [0, 1].';
COMMENT ON COLUMN analytics_generations.size IS 'Longest side in pixels.';
COMMENT ON COLUMN analytics_generations.format IS 'Content type served.';
COMMENT ON COLUMN analytics_generations.model_version IS 'generator+encoder versions.';
COMMENT ON COLUMN analytics_generations.provider IS 'Execution provider.';
COMMENT ON COLUMN analytics_generations.latency_ms IS 'Server latency (ms).';
COMMENT ON COLUMN analytics_generations.cache_hit IS 'Served from the cache.';

CREATE VIEW analytics_engagement_events AS
SELECT e.event_id, u.external_id AS user_id, i.external_id AS influencer, e.kind::text AS kind, e.occurred_at, e.post_id, e.weight
FROM engagement_events e JOIN users u ON u.id = e.user_id JOIN influencers i ON i.id = e.influencer_id;
COMMENT ON VIEW analytics_engagement_events IS 'The engagement log with external ids (for cohort queries).';
COMMENT ON COLUMN analytics_engagement_events.event_id IS 'Platform idempotency key.';
COMMENT ON COLUMN analytics_engagement_events.user_id IS 'User external id.';
COMMENT ON COLUMN analytics_engagement_events.influencer IS 'Influencer external id.';
COMMENT ON COLUMN analytics_engagement_events.kind IS 'Event kind.';
COMMENT ON COLUMN analytics_engagement_events.occurred_at IS 'When it happened.';
COMMENT ON COLUMN analytics_engagement_events.post_id IS 'Post, for likes.';
COMMENT ON COLUMN analytics_engagement_events.weight IS 'Platform weight multiplier.';

-- The role is cluster-wide (several Stylecast databases may share a server); grants are
-- per database. Its password and statement timeout are set by the service from settings.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'stylecast_analyst') THEN
        CREATE ROLE stylecast_analyst LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT;
    END IF;
END
$$;
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM stylecast_analyst;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO stylecast_analyst;
GRANT SELECT ON analytics_daily_engagement, analytics_follower_growth, analytics_user_top_influencers,
    analytics_recommendation_coverage, analytics_generations_daily, analytics_generations,
    analytics_engagement_events TO stylecast_analyst;
-- affinity_now() reads the decay parameters with the caller's rights.
GRANT SELECT ON affinity_params TO stylecast_analyst;
CREATE FUNCTION configure_analyst_role(password TEXT, statement_timeout_ms BIGINT) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF password IS NOT NULL THEN
        EXECUTE format('ALTER ROLE stylecast_analyst PASSWORD %L', password);
    END IF;
    -- Role settings are cluster-wide: only write when they differ, so services starting
    -- side by side do not update the same catalog row at once.
    IF NOT EXISTS (
        SELECT 1 FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole
        WHERE r.rolname = 'stylecast_analyst' AND s.setdatabase = 0
          AND ('statement_timeout=' || statement_timeout_ms || 'ms') = ANY (s.setconfig)
    ) THEN
        EXECUTE format('ALTER ROLE stylecast_analyst SET statement_timeout = %L', statement_timeout_ms || 'ms');
    END IF;
    -- Database privileges live outside the schema (a database cloned from a template does
    -- not inherit them), so they are set here, at every start.
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO stylecast_analyst', current_database());
END
$$;
COMMENT ON FUNCTION configure_analyst_role IS 'Sets the analyst role''s password (when given), statement timeout and database privileges; called by the service at start-up.';
