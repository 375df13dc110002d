\set a debug(1)
SELECT 1 / 0;
