-- Engagement on generated images (feeds). A new enum value cannot be used inside the
-- transaction that adds it, so this migration does only that.
ALTER TYPE event_kind ADD VALUE IF NOT EXISTS 'image_like';
ALTER TYPE event_kind ADD VALUE IF NOT EXISTS 'image_view';
