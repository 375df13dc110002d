\set
\sleep
\sleep 1 fortnights
