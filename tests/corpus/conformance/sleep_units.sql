-- \sleep with its unit attached or apart, and from a variable.
\set t 2
\sleep 2ms
\sleep 3 us
\sleep 1us
\sleep 0
\sleep 0 s
\sleep -5 ms
\sleep :t us
\sleep :t ms
\set d 1.9
\sleep :d us
\set a debug(:t)
SELECT 1;
