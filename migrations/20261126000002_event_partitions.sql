-- Monthly partitions of engagement_events, created on demand by the service (ahead of
-- time at start-up and daily, and for any month a batch touches). Serialised by an
-- advisory lock so concurrent callers never race on CREATE TABLE.
CREATE FUNCTION ensure_event_partition(month_of TIMESTAMPTZ) RETURNS TEXT
LANGUAGE plpgsql AS $$
DECLARE
    lo   TIMESTAMPTZ := date_trunc('month', month_of AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    hi   TIMESTAMPTZ := (date_trunc('month', month_of AT TIME ZONE 'UTC') + INTERVAL '1 month') AT TIME ZONE 'UTC';
    name TEXT := format('engagement_events_%s', to_char(month_of AT TIME ZONE 'UTC', 'YYYY_MM'));
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('engagement_events_partitions'));
    IF to_regclass(name) IS NULL THEN
        EXECUTE format('CREATE TABLE %I PARTITION OF engagement_events FOR VALUES FROM (%L) TO (%L)', name, lo, hi);
        EXECUTE format('COMMENT ON TABLE %I IS %L', name,
                       'Engagement events of ' || to_char(month_of AT TIME ZONE 'UTC', 'YYYY-MM') || ' (UTC).');
    END IF;
    RETURN name;
END
$$;
COMMENT ON FUNCTION ensure_event_partition IS 'Creates the monthly partition of engagement_events holding the given instant, if missing.';

-- The canonical definition of current state and affinity as a function of the event log.
-- Ingest maintains the same rows incrementally; this rebuilds them (parameter change,
-- audits; the crash test compares against it). Ties on occurred_at go to the larger
-- event_id in byte order, as in the service.
CREATE FUNCTION rebuild_state_from_log() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    p affinity_params;
BEGIN
    SELECT * INTO p FROM affinity_params;
    LOCK TABLE follows, likes, affinity_activity IN EXCLUSIVE MODE;
    DELETE FROM follows;
    DELETE FROM likes;
    DELETE FROM affinity_activity;
    INSERT INTO follows (user_id, influencer_id, active, weight, changed_at, changed_by_event)
    SELECT DISTINCT ON (user_id, influencer_id) user_id, influencer_id, kind = 'follow', weight, occurred_at, event_id
    FROM engagement_events WHERE kind IN ('follow', 'unfollow')
    ORDER BY user_id, influencer_id, occurred_at DESC, event_id DESC;
    INSERT INTO likes (user_id, influencer_id, post_id, active, weight, changed_at, changed_by_event)
    SELECT DISTINCT ON (user_id, influencer_id, coalesce(post_id, '')) user_id, influencer_id, coalesce(post_id, ''),
           kind = 'like', weight, occurred_at, event_id
    FROM engagement_events WHERE kind IN ('like', 'unlike')
    ORDER BY user_id, influencer_id, coalesce(post_id, ''), occurred_at DESC, event_id DESC;
    INSERT INTO affinity_activity (user_id, influencer_id, score_ref)
    SELECT user_id, influencer_id,
           sum(coalesce((p.weights ->> kind::text)::double precision, 0) * weight * affinity_growth(occurred_at))
    FROM engagement_events WHERE kind NOT IN ('like', 'unlike', 'follow', 'unfollow')
    GROUP BY user_id, influencer_id;
END
$$;
COMMENT ON FUNCTION rebuild_state_from_log IS 'Recomputes follows, likes and affinity_activity from engagement_events with the stored affinity_params.';
