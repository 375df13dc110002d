\set Ã©Ã 1
ÿþ SELECT
