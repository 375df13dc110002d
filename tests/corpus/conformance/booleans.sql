-- Comparisons, logic, CASE and \if with pgbench's notion of truth.
\set a debug(1 < 2 AND NOT 3 = 4)
\set a debug(1 <> 1 OR 2 != 2)
\set a debug(2.5 >= 2)
\set a debug(0.0 / 0 = 0.0 / 0)
\set a debug(true IS TRUE)
\set a debug(1 IS TRUE)
\set a debug(false IS NOT TRUE)
\set a debug(CASE WHEN 1 > 2 THEN 10 WHEN 2 > 1 THEN 20 ELSE 30 END)
\set a debug(CASE WHEN 0 THEN 1 WHEN 0.5 THEN 2 END)
\set a debug(case when true then 1.5 else 2 end)
\if 0
\set a debug(100)
\elif 0.0 / 0
\set a debug(101)
\elif null
\set a debug(102)
\else
\set a debug(103)
\endif
\if 2
\set a debug(104)
\endif
\set a debug(true and false or true)
\set a debug(not false and false)
SELECT 1;
