-- Where in a served list engagement happens: attributed follows and likes by rank, per
-- surface, over the last 14 days, next to the daily rate with its 95 % interval.
SELECT surface, rank, kind, count(*) AS engagements, count(DISTINCT user_id) AS users
FROM analytics_served_attribution
WHERE served_at > now() - interval '14 days'
GROUP BY surface, rank, kind
ORDER BY surface, rank, kind;

SELECT day, surface, coalesce(experiment, '-') AS experiment, variant, lists, impressions, engagements,
       round(rate::numeric, 4) AS rate, round(rate_low::numeric, 4) AS rate_low, round(rate_high::numeric, 4) AS rate_high
FROM analytics_served_ctr
WHERE day > current_date - 14
ORDER BY day DESC, surface, experiment, variant;
