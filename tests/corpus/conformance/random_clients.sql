-- args: -c 3
-- args: -c 3 --random-seed 99 -M simple
\set a debug(random(1, 1000000000))
\set a debug(random_gaussian(1, 1000, 2.5))
\set a debug(permute(:client_id, 10))
\set a debug(:default_seed)
\set a debug(:client_id * 1000 + random(1, 999))
SELECT 1;
