\set x random_zipfian(1, 100, 1.07)
\set y CASE WHEN :x > 50 THEN 1 WHEN :x IS NULL THEN 2 ELSE 3 END
\if :x > 90
  \if :y = 1
    SELECT 1;
  \endif
\elif :x > 10 AND NOT :y <> 1
  SELECT 2 AS two \gset
\else
  \sleep :y ms
\endif
\set big 9223372036854775807
\set small -9223372036854775808
\set h hash_fnv1a(:big, 5) # hash_murmur2(:small) # permute(:x, 100, 3)
\set z greatest(1, 2.0, least(3, 4)) + pow(2, 10) + sqrt(2) + ln(2) + exp(1) + mod(7, 3) + \
    random_exponential(1, 10, 2) + random_gaussian(1, 10, 3)
