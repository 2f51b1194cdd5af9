-- Scenario e for PostGraphile: amber filters a table by its own columns only, so "the
-- 50 most recent buildsets with a sourcestamp on this branch" is a SQL function, the
-- way PostGraphile is extended (a STABLE function returning SETOF a table becomes a
-- query field: recentBuildsets(count:, branch:)). The same rows in the same order as
-- this server's recentBuildsets: newest by submitted_at then id, returned oldest first.
-- bench creates it in the bench's database before PostGraphile starts.
CREATE OR REPLACE FUNCTION recent_buildsets(count integer, branch text)
RETURNS SETOF buildsets LANGUAGE sql STABLE AS $$
    SELECT r.* FROM (
        SELECT b.* FROM buildsets b
        WHERE b.id IN (
            SELECT bss.buildsetid FROM buildset_sourcestamps bss
            JOIN sourcestamps s ON s.id = bss.sourcestampid
            WHERE s.branch = recent_buildsets.branch)
        ORDER BY b.submitted_at DESC, b.id DESC
        LIMIT recent_buildsets.count
    ) r
    ORDER BY r.submitted_at, r.id
$$;
