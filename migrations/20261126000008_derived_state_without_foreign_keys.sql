-- The derived-state tables (follows, likes, affinity_activity) drop their foreign keys to
-- users and influencers. Each inserted row ran two referential-integrity checks that take a
-- FOR KEY SHARE lock on the user's and the influencer's rows. Measured on the ingest
-- benchmark's data, 1M events: the affinity upsert took 8.7 s of Postgres time with them and
-- 4.6 s without; HTTP ingest went from 0.42 to about 0.55 of the raw COPY rate.
-- What they guarded still holds:
-- - only ingest (and rebuild_state_from_log, from engagement_events) writes these rows, with
--   ids it has just resolved from users and influencers;
-- - nothing deletes users or influencers.
-- engagement_events, the source of truth, never had them (it is partitioned).
ALTER TABLE affinity_activity DROP CONSTRAINT affinity_activity_user_id_fkey,
                              DROP CONSTRAINT affinity_activity_influencer_id_fkey;
ALTER TABLE follows DROP CONSTRAINT follows_user_id_fkey,
                    DROP CONSTRAINT follows_influencer_id_fkey;
ALTER TABLE likes DROP CONSTRAINT likes_user_id_fkey,
                  DROP CONSTRAINT likes_influencer_id_fkey;
