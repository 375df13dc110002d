\set a debug(1)
\set a 9223372036854775807 + 1
\set a debug(2)
