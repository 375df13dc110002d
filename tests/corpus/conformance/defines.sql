-- args: -D b=of -D i=1 -D d=2.5 -D t=yes -D n=null -D f=F -D big=9223372036854775807 -D s=+12
\set a debug(:b)
\set a debug(:i + 1)
\set a debug(:d * 2)
\set a debug(:t)
\set a debug(:n)
\set a debug(:f)
\set a debug(:big)
\set a debug(:s)
\set a debug(:i = 1)
SELECT 1;
