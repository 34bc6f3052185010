-- Current hide state per user and influencer, kept by ingest like follows (the latest
-- hide/unhide wins, by occurred_at then event id). A hidden influencer is left out of the
-- user's recommendations, feed slots and interest blends. Hides carry no affinity.
CREATE TABLE hides (
    user_id          BIGINT NOT NULL,
    influencer_id    BIGINT NOT NULL,
    active           BOOLEAN NOT NULL,
    weight           REAL NOT NULL,
    changed_at       TIMESTAMPTZ NOT NULL,
    changed_by_event TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (user_id, influencer_id)
) WITH (fillfactor = 80);
COMMENT ON TABLE hides IS 'Current "not interested" state per user and influencer (latest hide/unhide wins).';
COMMENT ON COLUMN hides.active IS 'True when the latest event was a hide.';
COMMENT ON COLUMN hides.weight IS 'The event''s weight (kept for the shape shared with follows; hides carry no affinity).';
COMMENT ON COLUMN hides.changed_at IS 'occurred_at of the event that set this state.';

-- The canonical definition of state from the log, now with hides; hide/unhide add nothing
-- to affinity_activity.
CREATE OR REPLACE FUNCTION rebuild_state_from_log() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    p affinity_params;
BEGIN
    SELECT * INTO p FROM affinity_params;
    LOCK TABLE follows, likes, hides, affinity_activity IN EXCLUSIVE MODE;
    DELETE FROM follows;
    DELETE FROM likes;
    DELETE FROM hides;
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
    INSERT INTO hides (user_id, influencer_id, active, weight, changed_at, changed_by_event)
    SELECT DISTINCT ON (user_id, influencer_id) user_id, influencer_id, kind = 'hide', weight, occurred_at, event_id
    FROM engagement_events WHERE kind IN ('hide', 'unhide')
    ORDER BY user_id, influencer_id, occurred_at DESC, event_id DESC;
    INSERT INTO affinity_activity (user_id, influencer_id, score_ref)
    SELECT user_id, influencer_id,
           sum(coalesce((p.weights ->> kind::text)::double precision, 0) * weight * affinity_growth(occurred_at))
    FROM engagement_events WHERE kind NOT IN ('like', 'unlike', 'follow', 'unfollow', 'hide', 'unhide')
    GROUP BY user_id, influencer_id;
END
$$;
COMMENT ON FUNCTION rebuild_state_from_log IS 'Recomputes follows, likes, hides and affinity_activity from engagement_events with the stored affinity_params.';

CREATE VIEW analytics_hidden_influencers AS
SELECT i.external_id AS influencer, count(*) FILTER (WHERE h.active) AS hidden_by_users,
       count(*) FILTER (WHERE NOT h.active) AS unhidden_by_users, max(h.changed_at) AS last_change
FROM hides h JOIN influencers i ON i.id = h.influencer_id
GROUP BY i.external_id;
COMMENT ON VIEW analytics_hidden_influencers IS 'Per influencer: how many users hide it now ("not interested") and how many hid it and took that back.';
COMMENT ON COLUMN analytics_hidden_influencers.influencer IS 'Influencer external id.';
COMMENT ON COLUMN analytics_hidden_influencers.hidden_by_users IS 'Users whose latest hide/unhide of this influencer is a hide.';
COMMENT ON COLUMN analytics_hidden_influencers.unhidden_by_users IS 'Users whose latest hide/unhide is an unhide.';
COMMENT ON COLUMN analytics_hidden_influencers.last_change IS 'The newest hide or unhide.';

GRANT SELECT ON analytics_hidden_influencers TO stylecast_analyst;
COMMENT ON COLUMN analytics_daily_engagement.kind IS 'Event kind (like, unlike, follow, unfollow, comment, view, share, hide, unhide, image_like, image_view).';
