-- args: --random-seed 123456789
\set a debug(random(1, 1000000))
\set a debug(random_gaussian(1, 100, 2.0))
\set a debug(permute(1, 100))
\set a debug(hash(1))
\set a debug(:random_seed)
SELECT 1;
