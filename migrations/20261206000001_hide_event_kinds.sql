-- "Not interested": a user dismisses an influencer (hide) or takes it back (unhide). A new
-- enum value cannot be used inside the transaction that adds it, so this migration does
-- only that; the next one adds the state table.
ALTER TYPE event_kind ADD VALUE IF NOT EXISTS 'hide';
ALTER TYPE event_kind ADD VALUE IF NOT EXISTS 'unhide';
