-- What personalization earns: like rate of feed images by slot kind and recommendation
-- rank. The interest-blend slot (rank 0) against single influencers, and how the like rate
-- falls with rank, over the last 30 days of feed generations.
SELECT CASE WHEN feed_slot = 'blend' THEN 'blend' ELSE 'influencer' END AS slot_kind,
       recommendation_rank,
       count(*)                                           AS images,
       sum(views)                                         AS views,
       count(*) FILTER (WHERE liked)                      AS liked_images,
       round(avg(liked::int)::numeric, 3)                 AS like_rate
FROM analytics_feed_image_engagement
WHERE generated_at > now() - interval '30 days'
GROUP BY 1, 2
ORDER BY 1, 2;
