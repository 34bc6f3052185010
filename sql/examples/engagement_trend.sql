-- Daily engagement of the 10 influencers with the most events in the last 7 days, by kind.
WITH top AS (
    SELECT influencer FROM analytics_daily_engagement
    WHERE day > current_date - 7
    GROUP BY influencer ORDER BY sum(events) DESC LIMIT 10
)
SELECT d.day, d.influencer, d.kind, d.events, d.users
FROM analytics_daily_engagement d JOIN top USING (influencer)
WHERE d.day > current_date - 7
ORDER BY d.influencer, d.day, d.kind;
