-- Reading an experiment: each variant against the control (the first variant), users as the
-- unit. A difference whose interval excludes 0 is a real effect at the 95 % level; one that
-- contains 0 is not evidence of a difference (look at the width before calling it "no effect").
SELECT experiment, variant, is_control, users, rec_users,
       round(follow_rate::numeric, 3)                                   AS follow_rate,
       format('[%s, %s]', round(follow_rate_low::numeric, 3), round(follow_rate_high::numeric, 3)) AS follow_ci,
       round(follow_rate_diff::numeric, 3)                              AS follow_diff,
       format('[%s, %s]', round(follow_rate_diff_low::numeric, 3), round(follow_rate_diff_high::numeric, 3)) AS follow_diff_ci,
       CASE WHEN follow_rate_diff_low > 0 THEN 'better'
            WHEN follow_rate_diff_high < 0 THEN 'worse'
            WHEN is_control THEN 'control'
            ELSE 'no significant difference' END                       AS verdict,
       round(image_like_rate::numeric, 3)                               AS image_like_rate
FROM analytics_experiment_results
ORDER BY experiment, is_control DESC, variant;
