-- Influencers whose style is most requested: the summed blend weight each influencer got
-- over the last 30 days, split by how the blend was chosen (explicitly, or by interests).
SELECT w.key AS influencer,
       round(sum(w.value::numeric), 2) AS weighted_requests,
       round(sum(w.value::numeric) FILTER (WHERE g.blend_source IN ('influencer', 'mix')), 2) AS chosen_explicitly,
       round(sum(w.value::numeric) FILTER (WHERE g.blend_source IN ('interests', 'popularity')), 2) AS chosen_by_interests,
       count(*) AS generations
FROM analytics_generations g
CROSS JOIN LATERAL jsonb_each_text(g.blend) AS w
WHERE g.created_at > now() - INTERVAL '30 days'
GROUP BY w.key
ORDER BY weighted_requests DESC
LIMIT 20;
