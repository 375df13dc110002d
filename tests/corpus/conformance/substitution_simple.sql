-- args: -M simple
\set v NULL
SELECT :v IS NULL AS r \gset
\set a debug(:r)
\set d 0.1 + 0.2
SELECT :d = 0.3 AS r \gset
\set a debug(:r)
\set i 42
SELECT :i + 1 AS r \gset
\set a debug(:r)
\set inf 1.0 / 0
SELECT ':inf' AS r \gset
\set b true
SELECT :b AND true AS r \gset
\set a debug(:r)
SELECT 2.5::float8 AS r \gset
\set a debug(:r * 2)
