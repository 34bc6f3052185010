-- Weekly retention of users who generated an image: of the users whose first generation
-- fell in a given week, how many engaged with any influencer 1, 2, 3 and 4 weeks later?
WITH first_generation AS (
    SELECT user_id, date_trunc('week', min(created_at)) AS cohort_week
    FROM analytics_generations
    GROUP BY user_id
),
activity AS (
    SELECT DISTINCT user_id, date_trunc('week', occurred_at) AS active_week
    FROM analytics_engagement_events
)
SELECT f.cohort_week,
       count(DISTINCT f.user_id) AS cohort_size,
       count(DISTINCT a.user_id) FILTER (WHERE a.active_week = f.cohort_week + INTERVAL '1 week') AS week_1,
       count(DISTINCT a.user_id) FILTER (WHERE a.active_week = f.cohort_week + INTERVAL '2 weeks') AS week_2,
       count(DISTINCT a.user_id) FILTER (WHERE a.active_week = f.cohort_week + INTERVAL '3 weeks') AS week_3,
       count(DISTINCT a.user_id) FILTER (WHERE a.active_week = f.cohort_week + INTERVAL '4 weeks') AS week_4
FROM first_generation f
LEFT JOIN activity a ON a.user_id = f.user_id
GROUP BY f.cohort_week
ORDER BY f.cohort_week;
