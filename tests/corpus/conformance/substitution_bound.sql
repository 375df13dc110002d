-- args: -M prepared
-- args: -M extended
\set v NULL
SELECT :v::text IS NULL AS r \gset
\set a debug(:r)
\set d 0.1 + 0.2
SELECT :d::float8 = 0.3 AS r \gset
\set a debug(:r)
\set i 42
SELECT :i::int + 1 AS r \gset
\set a debug(:r)
SELECT 2.5::float8 AS r \gset
\set a debug(:r * 2)
